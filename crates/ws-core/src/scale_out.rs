//! The scale-out seam: hubs on several servers share rooms by handing each other their
//! room broadcasts ([`Hub::poll_publish`](crate::Hub::poll_publish) out,
//! [`Hub::deliver_remote`](crate::Hub::deliver_remote) in). [`ScaleOut`] is the trait a
//! backend implements; [`RedisScaleOut`] (feature `redis`) uses Redis pub/sub, one channel
//! per room.
//!
//! ```no_run
//! # async fn run(hub: &mut ws_core::Hub) -> ws_core::Result<()> {
//! use ws_core::{RedisScaleOut, ScaleOut};
//! let bus = RedisScaleOut::connect("redis://127.0.0.1:6379", "chat:").await?;
//! let mut inbox = bus.subscribe().await?;
//! hub.enable_publishing(true);
//! while let Some(publication) = hub.poll_publish() {
//!     bus.publish(&publication).await?;
//! }
//! if let Some(remote) = inbox.next().await {
//!     hub.deliver_remote(&remote.room, remote.message);
//! }
//! # Ok(()) }
//! ```

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tungstenite::Message;
use tungstenite::protocol::frame::Utf8Bytes;

use crate::error::{Error, Result};
use crate::hub::Publication;

/// A backend through which hubs exchange room broadcasts.
pub trait ScaleOut: Send + Sync {
    /// Hands one local broadcast to the other hubs.
    fn publish(&self, publication: &Publication) -> impl Future<Output = Result<()>> + Send;
}

/// Redis pub/sub: a broadcast to room `r` is published on channel `{prefix}r`, tagged with
/// this node's id so that a hub skips its own publications.
///
/// The channels are topics, not only chat rooms: anything that must reach the same
/// subscribers on every server (a GraphQL subscription's events, say) can go through a
/// `RedisScaleOut` of its own prefix, as a [`Publication`] whose room is the topic.
///
/// Publishing reconnects on its own after Redis restarts. A publish whose connection was
/// refused runs once more; one whose connection dropped after it may have been sent does
/// not (a repeat could deliver it twice), so a broadcast can be lost for the other servers
/// when Redis goes away: pub/sub delivers at most once.
#[derive(Clone)]
pub struct RedisScaleOut {
    client: redis::Client,
    connection: ConnectionManager,
    prefix: String,
    node: u64,
}

impl std::fmt::Debug for RedisScaleOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisScaleOut")
            .field("prefix", &self.prefix)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

pub(crate) fn backend(error: redis::RedisError) -> Error {
    Error::Backend(error.to_string())
}

impl RedisScaleOut {
    /// Connects to Redis at `url`; channels are named `{prefix}{room}`.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] when Redis cannot be reached.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self> {
        let client = redis::Client::open(url).map_err(backend)?;
        let connection = connect_manager(&client).await?;
        let node = random_node();
        Ok(Self {
            client,
            connection,
            prefix: prefix.to_owned(),
            node,
        })
    }

    /// This node's id: publications carry it, and the inbox skips its own.
    pub fn node(&self) -> u64 {
        self.node
    }

    /// Hands every other node's publication to `deliver` for as long as the future runs
    /// (it never ends): subscribes, and when the subscription cannot be made or ends (Redis
    /// restarting), tells `interrupted` why and subscribes again after `retry`. Spawn it
    /// next to whatever consumes the publications (a hub's
    /// [`deliver_remote`](crate::Hub::deliver_remote), a broadcast channel).
    pub async fn relay(
        &self,
        retry: Duration,
        mut deliver: impl FnMut(Publication) + Send,
        mut interrupted: impl FnMut(&Error) + Send,
    ) {
        loop {
            match self.subscribe().await {
                Ok(mut inbox) => {
                    while let Some(publication) = inbox.next().await {
                        deliver(publication);
                    }
                    interrupted(&Error::Backend("the Redis subscription ended".into()));
                }
                Err(error) => interrupted(&error),
            }
            tokio::time::sleep(retry).await;
        }
    }

    /// Subscribes to every room under the prefix; the returned inbox yields the other
    /// nodes' publications.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] when the subscription fails.
    pub async fn subscribe(&self) -> Result<RedisInbox> {
        let mut pubsub = self.client.get_async_pubsub().await.map_err(backend)?;
        pubsub
            .psubscribe(format!("{}*", escape_glob(&self.prefix)))
            .await
            .map_err(backend)?;
        Ok(RedisInbox {
            messages: Box::pin(pubsub.into_on_message()),
            prefix: self.prefix.clone(),
            node: self.node,
        })
    }
}

impl ScaleOut for RedisScaleOut {
    async fn publish(&self, publication: &Publication) -> Result<()> {
        let (kind, data): (u8, &[u8]) = match &publication.message {
            Message::Text(text) => (b't', text.as_bytes()),
            Message::Binary(data) => (b'b', data),
            _ => return Ok(()),
        };
        let mut payload = Vec::with_capacity(9 + data.len());
        payload.push(kind);
        payload.extend_from_slice(&self.node.to_be_bytes());
        payload.extend_from_slice(data);
        let channel = format!("{}{}", self.prefix, publication.room);
        let attempt = || {
            let mut connection = self.connection.clone();
            let (channel, payload) = (&channel, &payload);
            async move { connection.publish::<_, _, i64>(channel, payload).await }
        };
        match attempt().await {
            // Refused: it was not sent, so once more (the connection is being re-made).
            Err(error) if error.is_connection_refusal() => attempt().await,
            result => result,
        }
        .map_err(backend)?;
        Ok(())
    }
}

/// Publications from other nodes.
pub struct RedisInbox {
    messages: std::pin::Pin<Box<dyn futures_util::Stream<Item = redis::Msg> + Send>>,
    prefix: String,
    node: u64,
}

impl std::fmt::Debug for RedisInbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisInbox")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisInbox {
    /// The next publication of another node; `None` when the subscription ended.
    /// Malformed payloads are skipped.
    pub async fn next(&mut self) -> Option<Publication> {
        loop {
            let message = self.messages.next().await?;
            let Some(room) = message.get_channel_name().strip_prefix(&self.prefix) else {
                continue;
            };
            let payload = message.get_payload_bytes();
            let Some((&kind, rest)) = payload.split_first() else {
                continue;
            };
            let Some((node, data)) = rest.split_first_chunk::<8>() else {
                continue;
            };
            if u64::from_be_bytes(*node) == self.node {
                continue;
            }
            let message = match kind {
                b't' => match Utf8Bytes::try_from(Bytes::copy_from_slice(data)) {
                    Ok(text) => Message::Text(text),
                    Err(_) => continue,
                },
                b'b' => Message::Binary(Bytes::copy_from_slice(data)),
                _ => continue,
            };
            return Some(Publication {
                room: room.into(),
                message,
            });
        }
    }
}

/// A reconnecting connection whose commands time out after 2 seconds.
pub(crate) async fn connect_manager(client: &redis::Client) -> Result<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(1);
    ConnectionManager::new_with_config(client.clone(), config)
        .await
        .map_err(backend)
}

/// A random node id (std's per-instance hasher keys are random); a collision would only
/// make a hub skip another node's messages.
pub(crate) fn random_node() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// Escapes Redis glob characters so that the prefix matches literally.
fn escape_glob(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len());
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
