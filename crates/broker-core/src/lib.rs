#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "amqp")]
mod amqp;
mod any;
mod bridge;
mod broker;
mod capabilities;
mod codec;
mod dead_letter;
mod delivery;
mod embedded;
mod envelope;
mod error;
mod faults;
mod handler;
#[cfg(any(
    feature = "redis",
    feature = "nats",
    feature = "amqp",
    feature = "mqtt"
))]
mod held;
mod id_clock;
mod inbox;
mod inbox_layer;
mod journal;
mod metrics;
#[cfg(feature = "mqtt")]
mod mqtt;
#[cfg(feature = "mqtt")]
mod mqtt_topic;
mod ordering;
mod request_reply;
mod retry;
mod retry_layer;
mod settlement;
mod subject;
mod timeout_layer;
#[cfg(any(feature = "amqp", feature = "mqtt", feature = "redis"))]
mod tls;
#[cfg(feature = "tower")]
mod tower_handler;
mod trace_context;
mod trace_layer;
mod worker;

#[cfg(feature = "conformance")]
pub mod conformance;
#[cfg(feature = "nats")]
mod nats;
#[cfg(any(feature = "outbox-sqlite", feature = "outbox-postgres"))]
mod outbox;
#[cfg(feature = "redis")]
mod redis;

#[cfg(feature = "amqp")]
pub use amqp::{AmqpBroker, AmqpOptions, AmqpQueueType};
pub use any::{AnyBroker, redact_url};
pub use bridge::{Bridge, BridgeStats, Route, SOURCE_ATTEMPT, Target};
pub use broker::{Broker, Delivery, check_queue_name};
pub use capabilities::Capabilities;
pub use codec::{Codec, Json, RawBytes};
pub use dead_letter::DeadLetter;
pub use delivery::{QueueConfig, QueueCore};
pub use embedded::{EmbeddedBroker, QueueStats};
pub use envelope::{
    DEAD_LETTER_ATTEMPTS, DEAD_LETTER_REASON, Envelope, Headers, MAX_HEADER_BYTES, MAX_HEADER_NAME,
    MAX_HEADERS, MessageId,
};
pub use error::{Error, Result};
pub use faults::{FaultStats, Faults};
pub use handler::{
    Handler, HandlerBuilder, HandlerError, HandlerFn, HandlerResult, Identity, Layer, Stack,
    handler_fn, verdict,
};
#[cfg(feature = "redis")]
pub use inbox::RedisInbox;
pub use inbox::{Claim, Inbox, LeaseToken, MemoryInbox};
pub use inbox_layer::{InboxHandler, InboxLayer};
pub use journal::{JournalOptions, SyncPolicy};
pub use metrics::{DURATION_BUCKETS, Measured, Metrics, MetricsLayer, MetricsSnapshot};
#[cfg(feature = "mqtt")]
pub use mqtt::{
    MqttBroker, MqttMessage, MqttOptions, MqttPublish, MqttQos, MqttSubscription, SUBJECT_HEADER,
};
#[cfg(feature = "mqtt")]
pub use mqtt_topic::{mqtt_filter_to_subject, subject_to_mqtt_filter};
#[cfg(feature = "nats")]
pub use nats::NatsBroker;
pub use ordering::ORDERING_KEY;
#[cfg(any(feature = "outbox-sqlite", feature = "outbox-postgres"))]
pub use outbox::OutboxMessage;
#[cfg(feature = "outbox-postgres")]
pub use outbox::PostgresOutbox;
#[cfg(feature = "outbox-sqlite")]
pub use outbox::SqliteOutbox;
#[cfg(feature = "redis")]
pub use redis::RedisBroker;
pub use retry::{JitterSource, RetryPolicy};
pub use retry_layer::{Retry, RetryLayer};
pub use settlement::{Disposition, Settlement, decide, decide_expired};
pub use subject::{MAX_SUBJECT_LEN, SubjectPattern, SubjectPermissions, SubjectRefusal};
pub use timeout_layer::{Timeout, TimeoutLayer};
#[cfg(feature = "tower")]
pub use tower_handler::ServiceHandler;
pub use trace_context::{Scoped, TraceContext};
pub use trace_layer::{TraceLayer, Traced, TracedBroker};
pub use worker::{Worker, WorkerReport};
