//! [`AnyBroker`]: the backend a URL names, as one type.
//!
//! [`Broker`] returns `impl Future`, so there is no `dyn Broker`; a program that picks its
//! broker from configuration at run time holds an [`AnyBroker`], which forwards every call
//! (the batch calls, fan-out, request/reply and the capabilities included) to the backend
//! it holds, so nothing a backend does better than the trait's defaults is lost.
//!
//! ```
//! use broker_core::{AnyBroker, Broker as _};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let url = std::env::var("BROKER_URL").ok();
//! // Unset: the embedded broker. `nats://…` needs the `nats` feature, and so on.
//! let broker = AnyBroker::connect(url.as_deref().unwrap_or("embedded"), "app-").await?;
//! println!("broker: {}", broker.name());
//! # Ok::<_, broker_core::Error>(())
//! # }).unwrap();
//! ```

use std::borrow::Cow;
use std::time::Duration;

#[cfg(feature = "amqp")]
use crate::AmqpBroker;
#[cfg(feature = "mqtt")]
use crate::MqttBroker;
#[cfg(feature = "nats")]
use crate::NatsBroker;
#[cfg(feature = "redis")]
use crate::RedisBroker;
use crate::{
    Broker, Capabilities, DeadLetter, Delivery, Disposition, EmbeddedBroker, Envelope, Error,
    QueueConfig, Result, Settlement,
};

/// One of the compiled-in backends, chosen by URL scheme with [`connect`](Self::connect):
///
/// | URL | backend | feature |
/// |---|---|---|
/// | `embedded` (or `embedded://`) | [`EmbeddedBroker`] in memory | none |
/// | `embedded://DIR` (e.g. `embedded:///var/lib/app/broker`) | [`EmbeddedBroker::open`]: durable, its journal in `DIR` | none |
/// | `redis://`, `rediss://` | `RedisBroker` | `redis` |
/// | `nats://` | `NatsBroker` | `nats` |
/// | `amqp://` | `AmqpBroker` | `amqp` |
/// | `amqps://` | `AmqpBroker` over TLS | `amqp` and `tls` |
/// | `mqtt://`, `tcp://` | `MqttBroker` | `mqtt` |
/// | `mqtts://`, `ssl://` | `MqttBroker` over TLS | `mqtt` and `tls` |
///
/// A scheme whose feature is off is [`Error::FeatureDisabled`], which names the feature.
/// [`Broker::name`] says which backend it holds; match on the variants (or build one with
/// `From`, e.g. from `AmqpBroker::connect_with` and its options) to reach a backend's
/// own methods.
///
/// ```
/// use broker_core::{AnyBroker, Broker as _, Envelope, QueueConfig};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let broker = AnyBroker::connect("embedded", "").await?;
/// assert_eq!(broker.name(), "embedded");
/// broker.declare("jobs", &QueueConfig::default()).await?;
/// broker.publish("jobs", Envelope::new("hello")).await?;
/// assert_eq!(broker.pending("jobs").await?, 1);
/// # Ok::<_, broker_core::Error>(())
/// # }).unwrap();
/// ```
// One value per connection: boxing the larger clients would cost an indirection on every
// call and save nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
#[non_exhaustive]
pub enum AnyBroker {
    /// The in-process broker.
    Embedded(EmbeddedBroker),
    /// Redis Streams.
    #[cfg(feature = "redis")]
    Redis(RedisBroker),
    /// NATS JetStream.
    #[cfg(feature = "nats")]
    Nats(NatsBroker),
    /// RabbitMQ (AMQP 0-9-1).
    #[cfg(feature = "amqp")]
    Amqp(AmqpBroker),
    /// MQTT 5.
    #[cfg(feature = "mqtt")]
    Mqtt(MqttBroker),
}

/// Runs `$call` on whichever broker `$any` holds, bound as `$b`.
macro_rules! each {
    ($any:expr, $b:ident => $call:expr) => {
        match $any {
            AnyBroker::Embedded($b) => $call,
            #[cfg(feature = "redis")]
            AnyBroker::Redis($b) => $call,
            #[cfg(feature = "nats")]
            AnyBroker::Nats($b) => $call,
            #[cfg(feature = "amqp")]
            AnyBroker::Amqp($b) => $call,
            #[cfg(feature = "mqtt")]
            AnyBroker::Mqtt($b) => $call,
        }
    };
}

/// The backend a URL's scheme names, whether or not it is compiled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Embedded,
    Redis,
    Nats,
    Amqp,
    Mqtt,
}

impl Kind {
    /// What follows a namespace in the backend's names (see
    /// [`AnyBroker::connect_namespaced`]).
    fn separator(self) -> &'static str {
        match self {
            Kind::Embedded => "",
            Kind::Redis => ":",
            Kind::Nats => "_",
            Kind::Amqp => ".",
            Kind::Mqtt => "/",
        }
    }
}

/// What a URL's scheme says, and the scheme as written (for errors).
fn kind(url: &str) -> Result<(Kind, &'static str)> {
    let invalid = |reason| Error::InvalidUrl {
        url: redact_url(url).chars().take(200).collect(),
        reason,
    };
    if url == "embedded" {
        return Ok((Kind::Embedded, "embedded"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("has spaces or control characters"));
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(invalid(
            "no scheme: expected nats://, redis://, rediss://, amqp(s)://, mqtt(s)://, tcp://, ssl:// or embedded",
        ));
    };
    let found = match scheme {
        "embedded" => return Ok((Kind::Embedded, "embedded")),
        "redis" => (Kind::Redis, "redis"),
        "rediss" => (Kind::Redis, "rediss"),
        "nats" => (Kind::Nats, "nats"),
        "amqp" => (Kind::Amqp, "amqp"),
        "amqps" => (Kind::Amqp, "amqps"),
        "mqtt" => (Kind::Mqtt, "mqtt"),
        "mqtts" => (Kind::Mqtt, "mqtts"),
        "ssl" => (Kind::Mqtt, "ssl"),
        "tcp" => (Kind::Mqtt, "tcp"),
        _ => {
            return Err(invalid(
                "unknown scheme: expected nats://, redis://, rediss://, amqp(s)://, mqtt(s)://, tcp://, ssl:// or embedded",
            ));
        }
    };
    let address = authority(rest)
        .rsplit_once('@')
        .map_or(authority(rest), |(_, address)| address);
    if address.is_empty() || address.starts_with(':') {
        return Err(invalid("no host"));
    }
    Ok(found)
}

/// The authority of what follows `scheme://`: up to the path, query or fragment.
fn authority(rest: &str) -> &str {
    rest.split(['/', '?', '#']).next().unwrap_or(rest)
}

/// `url` with its user information replaced by `...`, for logs and error messages:
/// `amqp://guest:guest@host:5672/%2f` becomes `amqp://...@host:5672/%2f`. The user name
/// goes too, since NATS tokens and some Redis passwords sit in it. A URL without user
/// information comes back as it is.
///
/// ```
/// assert_eq!(
///     broker_core::redact_url("redis://:secret@cache:6379/0"),
///     "redis://...@cache:6379/0"
/// );
/// assert_eq!(broker_core::redact_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
/// ```
#[must_use]
pub fn redact_url(url: &str) -> Cow<'_, str> {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    match authority(rest).rsplit_once('@') {
        Some((login, _)) => {
            // `login` is a prefix of `rest`: what follows it is `@host…`.
            let after = rest.get(login.len()..).unwrap_or("");
            Cow::Owned(match scheme {
                Some(scheme) => format!("{scheme}://...{after}"),
                None => format!("...{after}"),
            })
        }
        None => Cow::Borrowed(url),
    }
}

impl AnyBroker {
    /// Connects to the backend `url`'s scheme names (the table on [`AnyBroker`]) with
    /// `prefix` before the names it creates, exactly as that backend's own `connect`
    /// takes it (the embedded broker has none and ignores it).
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] when the URL has no scheme, an unknown one, or no host;
    /// [`Error::FeatureDisabled`] when its backend is not compiled in; otherwise what the
    /// backend's `connect` returns (a bad prefix, a server that cannot be reached). The
    /// URL in an error never shows its password ([`redact_url`]).
    pub async fn connect(url: &str, prefix: &str) -> Result<Self> {
        let (kind, scheme) = kind(url)?;
        Self::open(kind, scheme, url, prefix).await
    }

    /// [`connect`](Self::connect) with a prefix made of `namespace` and the separator the
    /// backend's names use: `namespace:` on Redis (keys `namespace:queue:s`), `namespace_`
    /// on NATS (streams `Q_namespace_queue`), `namespace.` on RabbitMQ (queues
    /// `namespace.queue`) and the topic level `namespace/` on MQTT. An empty namespace is
    /// an empty prefix.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn connect_namespaced(url: &str, namespace: &str) -> Result<Self> {
        let (kind, scheme) = kind(url)?;
        let prefix = if namespace.is_empty() {
            String::new()
        } else {
            format!("{namespace}{}", kind.separator())
        };
        Self::open(kind, scheme, url, &prefix).await
    }

    async fn open(kind: Kind, scheme: &'static str, url: &str, prefix: &str) -> Result<Self> {
        match kind {
            Kind::Embedded => {
                let _ = (scheme, prefix);
                // Whatever follows `embedded://` is the journal's directory.
                match url
                    .strip_prefix("embedded://")
                    .filter(|dir| !dir.is_empty())
                {
                    Some(dir) => EmbeddedBroker::open(dir).map(Self::Embedded),
                    None => Ok(Self::Embedded(EmbeddedBroker::new())),
                }
            }
            #[cfg(feature = "redis")]
            Kind::Redis => RedisBroker::connect(url, prefix).await.map(Self::Redis),
            #[cfg(not(feature = "redis"))]
            Kind::Redis => Err(Error::FeatureDisabled {
                scheme,
                feature: "redis",
            }),
            #[cfg(feature = "nats")]
            Kind::Nats => NatsBroker::connect(url, prefix).await.map(Self::Nats),
            #[cfg(not(feature = "nats"))]
            Kind::Nats => Err(Error::FeatureDisabled {
                scheme,
                feature: "nats",
            }),
            #[cfg(feature = "amqp")]
            Kind::Amqp => AmqpBroker::connect(url, prefix).await.map(Self::Amqp),
            #[cfg(not(feature = "amqp"))]
            Kind::Amqp => Err(Error::FeatureDisabled {
                scheme,
                feature: "amqp",
            }),
            #[cfg(feature = "mqtt")]
            Kind::Mqtt => MqttBroker::connect(url, prefix).await.map(Self::Mqtt),
            #[cfg(not(feature = "mqtt"))]
            Kind::Mqtt => Err(Error::FeatureDisabled {
                scheme,
                feature: "mqtt",
            }),
        }
    }
}

impl From<EmbeddedBroker> for AnyBroker {
    fn from(broker: EmbeddedBroker) -> Self {
        Self::Embedded(broker)
    }
}

#[cfg(feature = "redis")]
impl From<RedisBroker> for AnyBroker {
    fn from(broker: RedisBroker) -> Self {
        Self::Redis(broker)
    }
}

#[cfg(feature = "nats")]
impl From<NatsBroker> for AnyBroker {
    fn from(broker: NatsBroker) -> Self {
        Self::Nats(broker)
    }
}

#[cfg(feature = "amqp")]
impl From<AmqpBroker> for AnyBroker {
    fn from(broker: AmqpBroker) -> Self {
        Self::Amqp(broker)
    }
}

#[cfg(feature = "mqtt")]
impl From<MqttBroker> for AnyBroker {
    fn from(broker: MqttBroker) -> Self {
        Self::Mqtt(broker)
    }
}

// Every method, the defaulted ones too: a backend's own batch, fan-out, request/reply and
// pending count must reach it, not the trait's fallback.
impl Broker for AnyBroker {
    fn name(&self) -> &'static str {
        each!(self, b => b.name())
    }

    fn capabilities(&self) -> Capabilities {
        each!(self, b => b.capabilities())
    }

    async fn declare(&self, queue: &str, config: &QueueConfig) -> Result<()> {
        each!(self, b => b.declare(queue, config).await)
    }

    async fn publish(&self, queue: &str, envelope: Envelope) -> Result<()> {
        each!(self, b => b.publish(queue, envelope).await)
    }

    async fn publish_batch(&self, queue: &str, envelopes: Vec<Envelope>) -> Result<()> {
        each!(self, b => b.publish_batch(queue, envelopes).await)
    }

    async fn fetch(
        &self,
        queue: &str,
        consumer: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>> {
        each!(self, b => b.fetch(queue, consumer, max, wait).await)
    }

    async fn settle(&self, delivery: &Delivery, settlement: Settlement) -> Result<Disposition> {
        each!(self, b => b.settle(delivery, settlement).await)
    }

    async fn settle_batch(
        &self,
        deliveries: &[Delivery],
        settlement: Settlement,
    ) -> Vec<Result<Disposition>> {
        each!(self, b => b.settle_batch(deliveries, settlement).await)
    }

    async fn dead_letters(&self, queue: &str, max: usize) -> Result<Vec<DeadLetter>> {
        each!(self, b => b.dead_letters(queue, max).await)
    }

    async fn redrive(&self, queue: &str, max: usize) -> Result<usize> {
        each!(self, b => b.redrive(queue, max).await)
    }

    async fn bind(&self, topic: &str, queue: &str) -> Result<()> {
        each!(self, b => b.bind(topic, queue).await)
    }

    async fn publish_topic(&self, topic: &str, envelope: Envelope) -> Result<()> {
        each!(self, b => b.publish_topic(topic, envelope).await)
    }

    async fn request(
        &self,
        queue: &str,
        envelope: Envelope,
        timeout: Duration,
    ) -> Result<Envelope> {
        each!(self, b => b.request(queue, envelope, timeout).await)
    }

    async fn reply(&self, request: &Delivery, response: Envelope) -> Result<()> {
        each!(self, b => b.reply(request, response).await)
    }

    async fn pending(&self, queue: &str) -> Result<usize> {
        each!(self, b => b.pending(queue).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn send_sync<T: Send + Sync>() {}
    const _: () = send_sync::<AnyBroker>();

    #[test]
    fn schemes_name_their_backends() {
        for (url, expected) in [
            ("embedded", Kind::Embedded),
            ("embedded://", Kind::Embedded),
            ("redis://127.0.0.1:6379", Kind::Redis),
            ("rediss://:pw@cache.example:6380/1", Kind::Redis),
            ("nats://127.0.0.1:4222", Kind::Nats),
            ("nats://token@127.0.0.1", Kind::Nats),
            ("amqp://guest:guest@127.0.0.1:5672/%2f", Kind::Amqp),
            ("mqtt://127.0.0.1:1883", Kind::Mqtt),
            ("tcp://[::1]:1883", Kind::Mqtt),
        ] {
            assert_eq!(kind(url).map(|(k, _)| k).ok(), Some(expected), "{url}");
        }
    }

    #[test]
    fn unknown_schemes_and_malformed_urls_are_errors() {
        for (url, reason) in [
            ("kafka://127.0.0.1:9092", "unknown scheme"),
            ("NATS://127.0.0.1:4222", "unknown scheme"),
            ("127.0.0.1:4222", "no scheme"),
            ("", "no scheme"),
            ("nats:/127.0.0.1", "no scheme"),
            ("nats://", "no host"),
            ("redis://:pw@/0", "no host"),
            ("amqp://:5672", "no host"),
            ("nats://127.0.0.1:4222\n", "has spaces or control"),
            ("nats://host name", "has spaces or control"),
        ] {
            match kind(url) {
                Err(Error::InvalidUrl { reason: got, .. }) => {
                    assert!(got.starts_with(reason), "{url:?}: {got}");
                }
                other => panic!("{url:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn an_invalid_url_is_reported_without_its_password() {
        let Err(error) = kind("kafka://user:hunter2@broker:9092") else {
            panic!("kafka:// was accepted");
        };
        let message = error.to_string();
        assert!(!message.contains("hunter2"), "{message}");
        assert!(message.contains("kafka://...@broker:9092"), "{message}");
    }

    #[test]
    fn redaction_hides_the_user_information() {
        for (url, redacted) in [
            (
                "amqp://guest:guest@127.0.0.1:5672/%2f",
                "amqp://...@127.0.0.1:5672/%2f",
            ),
            ("redis://:secret@cache:6379/0", "redis://...@cache:6379/0"),
            ("nats://s3cr3t-token@nats:4222", "nats://...@nats:4222"),
            // An `@` in the password, unescaped: everything up to the last one goes.
            ("mqtt://u:p@ss@host:1883", "mqtt://...@host:1883"),
            // An `@` after the authority is not user information.
            ("nats://host:4222/x@y", "nats://host:4222/x@y"),
            ("redis://host/0?user=a@b", "redis://host/0?user=a@b"),
            ("user:pw@host:5672", "...@host:5672"),
            ("embedded", "embedded"),
            ("", ""),
        ] {
            assert_eq!(redact_url(url), redacted, "{url}");
        }
    }

    #[tokio::test]
    async fn embedded_with_a_directory_is_durable() {
        let dir = std::env::temp_dir().join(format!(
            "broker-core-any-durable-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let url = format!("embedded://{}", dir.display());
        {
            let broker = AnyBroker::connect(&url, "").await.unwrap();
            assert_eq!(broker.name(), "embedded");
            broker
                .declare("jobs", &QueueConfig::default())
                .await
                .unwrap();
            broker.publish("jobs", Envelope::new("kept")).await.unwrap();
        }
        let reopened = AnyBroker::connect(&url, "").await.unwrap();
        reopened
            .declare("jobs", &QueueConfig::default())
            .await
            .unwrap();
        assert_eq!(reopened.pending("jobs").await.unwrap(), 1);
        drop(reopened);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn embedded_needs_no_server_and_ignores_the_prefix() {
        for url in ["embedded", "embedded://"] {
            let broker = AnyBroker::connect(url, "any-prefix").await.unwrap();
            assert_eq!(broker.name(), "embedded");
            assert!(matches!(broker, AnyBroker::Embedded(_)));
            assert_eq!(broker.capabilities(), EmbeddedBroker::new().capabilities());
        }
    }

    #[tokio::test]
    async fn a_backend_left_out_names_its_feature() {
        #[allow(unused_mut)]
        let mut off: Vec<(&str, &str)> = Vec::new();
        #[cfg(not(feature = "redis"))]
        off.push(("rediss://127.0.0.1:6379", "redis"));
        #[cfg(not(feature = "nats"))]
        off.push(("nats://127.0.0.1:4222", "nats"));
        #[cfg(not(feature = "amqp"))]
        off.push(("amqp://127.0.0.1:5672", "amqp"));
        #[cfg(not(feature = "mqtt"))]
        off.push(("tcp://127.0.0.1:1883", "mqtt"));
        for (url, feature) in off {
            match AnyBroker::connect(url, "").await {
                Err(error @ Error::FeatureDisabled { feature: got, .. }) => {
                    assert_eq!(got, feature);
                    assert!(
                        error.to_string().contains(&format!("`{feature}`")),
                        "{error}"
                    );
                }
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    #[test]
    fn namespaces_take_each_backends_separator() {
        assert_eq!(Kind::Redis.separator(), ":");
        assert_eq!(Kind::Nats.separator(), "_");
        assert_eq!(Kind::Amqp.separator(), ".");
        assert_eq!(Kind::Mqtt.separator(), "/");
        assert_eq!(Kind::Embedded.separator(), "");
    }
}
