//! Who is in which room over several servers (feature `redis`): each server writes a
//! snapshot of its hub's memberships to Redis on a heartbeat, with a time to live, and reads
//! the other servers' snapshots. A server that dies (even by SIGKILL, with no chance to say
//! goodbye) stops refreshing its snapshot, which expires: its members disappear from every
//! other server's list within the time to live.
//!
//! Live joins and leaves go out on the pub/sub channel `{prefix}events` as they happen
//! ([`RedisPresence::announce`], [`RedisPresence::relay`]); a [`PresenceView`] on each
//! server merges them with the snapshots ([`RedisPresence::snapshots`], every heartbeat)
//! and says which joins and leaves to announce to its clients: live within a pub/sub hop,
//! and for a killed server's members once its snapshot has expired. A graceful stop
//! ([`RedisPresence::remove`]) deletes the snapshot and tells the others at once.
//!
//! Layout: a hash per server, `{prefix}{node}` (node in hex), field `{client id} {room}`,
//! value the member's name, plus the field `version` (the hub's
//! [`membership_version`](crate::Hub::membership_version) of the snapshot), expiring after
//! the time to live; the set `{prefix}nodes` lists the servers that wrote one. A server
//! whose hash has expired is removed from the set by whoever reads it next. On the
//! channel, a change is `j` (join) or `l` (leave), then the node, the version and the
//! member id (8 bytes each, big-endian), the room's length (2 bytes) and the room, then
//! the name; `g` and the node says a server stopped.
//!
//! ```no_run
//! # async fn run(hub: &ws_core::Hub) -> ws_core::Result<()> {
//! use std::time::Duration;
//! use ws_core::RedisPresence;
//! let presence = RedisPresence::connect("redis://127.0.0.1:6379", "chat:presence:", Duration::from_secs(6)).await?;
//! // Every 2 s, well within the time to live:
//! presence.heartbeat(hub.membership_version(), &hub.memberships()).await?;
//! let others = presence.others().await?;
//! for member in others.iter().filter(|member| &*member.room == "lobby") {
//!     println!("{} on server {:x}", member.name, member.node);
//! }
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::ConnectionManager;

use crate::cluster_presence::{MemberChange, NodeSnapshot, PresenceUpdate};
use crate::error::{Error, Result};
use crate::hub::{ClientId, MembershipChange};
use crate::scale_out::{backend, connect_manager, random_node};

/// A member of a room connected to another server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteMember {
    /// The server (its [`RedisPresence::node`]).
    pub node: u64,
    /// The member's id on that server (ids are per server: two servers may both have a 1).
    pub client: u64,
    /// The room.
    pub room: Arc<str>,
    /// The member's name.
    pub name: Arc<str>,
}

/// Room memberships shared through Redis, with a heartbeat per server. Cloning is cheap
/// and shares the connection.
#[derive(Clone)]
pub struct RedisPresence {
    client: redis::Client,
    connection: ConnectionManager,
    prefix: Arc<str>,
    node: u64,
    ttl: Duration,
}

impl std::fmt::Debug for RedisPresence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPresence")
            .field("prefix", &self.prefix)
            .field("node", &self.node)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// Whether a command may run once more: the connection dropped or was refused (the first
/// command after a Redis restart fails so while the connection is re-made). Every command
/// here is safe to repeat (a snapshot replaces the last one; reads change nothing).
fn connection_dropped(error: &redis::RedisError) -> bool {
    error.is_connection_refusal() || error.is_connection_dropped()
}

impl RedisPresence {
    /// Connects to the Redis at `url`; keys start with `prefix`; a snapshot lives `ttl`
    /// after its heartbeat (heartbeat at least twice per `ttl`). A server's members
    /// disappear from the others' lists at most `ttl` after its last heartbeat.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`](crate::Error::Backend) when Redis cannot be reached.
    pub async fn connect(url: &str, prefix: &str, ttl: Duration) -> Result<Self> {
        let client = redis::Client::open(url).map_err(backend)?;
        Ok(Self {
            connection: connect_manager(&client).await?,
            client,
            prefix: Arc::from(prefix),
            node: random_node(),
            ttl: ttl.max(Duration::from_millis(1)),
        })
    }

    /// This server's id in the snapshots.
    pub fn node(&self) -> u64 {
        self.node
    }

    /// How long a snapshot lives after its heartbeat.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn node_key(&self, node: u64) -> String {
        format!("{}{node:x}", self.prefix)
    }

    fn nodes_key(&self) -> String {
        format!("{}nodes", self.prefix)
    }

    fn events_channel(&self) -> String {
        format!("{}events", self.prefix)
    }

    async fn retry_once<T: redis::FromRedisValue>(
        &self,
        pipeline: &redis::Pipeline,
    ) -> redis::RedisResult<T> {
        match pipeline.query_async(&mut self.connection.clone()).await {
            Err(error) if connection_dropped(&error) => {
                pipeline.query_async(&mut self.connection.clone()).await
            }
            result => result,
        }
    }

    /// Replaces this server's snapshot with `memberships` (as
    /// [`Hub::memberships`](crate::Hub::memberships) lists them) at `version` (the hub's
    /// [`membership_version`](crate::Hub::membership_version) taken with them) and keeps
    /// it alive for the time to live. A server with no member still writes one: it is
    /// alive.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`](crate::Error::Backend) when Redis fails.
    pub async fn heartbeat(
        &self,
        version: u64,
        memberships: &[(Arc<str>, ClientId, Arc<str>)],
    ) -> Result<()> {
        let key = self.node_key(self.node);
        let ttl = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        let mut fields: Vec<(String, String)> = memberships
            .iter()
            .map(|(room, id, name)| (format!("{} {room}", id.get()), name.to_string()))
            .collect();
        fields.push(("version".to_owned(), version.to_string()));
        let mut pipeline = redis::pipe();
        pipeline
            .atomic()
            .del(&key)
            .ignore()
            .hset_multiple(&key, &fields)
            .ignore()
            .pexpire(&key, i64::try_from(ttl).unwrap_or(i64::MAX))
            .ignore();
        pipeline.sadd(self.nodes_key(), self.node).ignore();
        self.retry_once::<()>(&pipeline).await.map_err(backend)
    }

    /// Removes this server's snapshot and tells the other servers that it stopped, so
    /// that they announce its members as left at once (a graceful stop; a crash lets the
    /// snapshot expire instead). Stop the heartbeats first: a later one writes it again.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`](crate::Error::Backend) when Redis fails.
    pub async fn remove(&self) -> Result<()> {
        let mut gone = vec![b'g'];
        gone.extend_from_slice(&self.node.to_be_bytes());
        let mut pipeline = redis::pipe();
        pipeline
            .atomic()
            .del(self.node_key(self.node))
            .ignore()
            .srem(self.nodes_key(), self.node)
            .ignore()
            .publish(self.events_channel(), gone)
            .ignore();
        self.retry_once::<()>(&pipeline).await.map_err(backend)
    }

    /// Tells the other servers, live, of one join or leave of this server's hub (as
    /// [`Hub::poll_membership_change`](crate::Hub::poll_membership_change) hands them
    /// out, in order). Pub/sub delivers at most once: a change lost while Redis was away
    /// reaches the others with the next snapshot.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`](crate::Error::Backend) when Redis fails.
    pub async fn announce(&self, change: &MembershipChange) -> Result<()> {
        let presence = &change.presence;
        let room = presence.room.as_bytes();
        let room_len = u16::try_from(room.len())
            .map_err(|_| Error::Backend("a room name over 65535 bytes is not shared".into()))?;
        let mut payload = Vec::with_capacity(27 + room.len() + presence.name.len());
        payload.push(if presence.joined { b'j' } else { b'l' });
        payload.extend_from_slice(&self.node.to_be_bytes());
        payload.extend_from_slice(&change.version.to_be_bytes());
        payload.extend_from_slice(&presence.client.get().to_be_bytes());
        payload.extend_from_slice(&room_len.to_be_bytes());
        payload.extend_from_slice(room);
        payload.extend_from_slice(presence.name.as_bytes());
        let mut pipeline = redis::pipe();
        pipeline.publish(self.events_channel(), payload).ignore();
        // A repeat is harmless: the receivers ignore a version they already applied.
        self.retry_once::<()>(&pipeline).await.map_err(backend)
    }

    /// Hands every other server's live update to `deliver` for as long as the future runs
    /// (it never ends): subscribes to `{prefix}events`, and when the subscription cannot
    /// be made or ends (Redis restarting), tells `interrupted` why and subscribes again
    /// after `retry`. Malformed messages are skipped.
    pub async fn relay(
        &self,
        retry: Duration,
        mut deliver: impl FnMut(PresenceUpdate) + Send,
        mut interrupted: impl FnMut(&Error) + Send,
    ) {
        loop {
            match self.client.get_async_pubsub().await {
                Ok(mut pubsub) => match pubsub.subscribe(self.events_channel()).await {
                    Ok(()) => {
                        let mut messages = pubsub.into_on_message();
                        while let Some(message) = messages.next().await {
                            match decode(message.get_payload_bytes()) {
                                Some(update) if update_node(&update) != self.node => {
                                    deliver(update)
                                }
                                _ => {}
                            }
                        }
                        interrupted(&Error::Backend("the Redis subscription ended".into()));
                    }
                    Err(error) => interrupted(&backend(error)),
                },
                Err(error) => interrupted(&backend(error)),
            }
            tokio::time::sleep(retry).await;
        }
    }

    /// Every other live server's snapshot, with its version (feed them to
    /// [`PresenceView::handle_snapshots`](crate::PresenceView::handle_snapshots)).
    /// Servers whose snapshot has expired are dropped from the list of servers.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`](crate::Error::Backend) when Redis fails.
    pub async fn snapshots(&self) -> Result<Vec<NodeSnapshot>> {
        let mut list = redis::pipe();
        list.smembers(self.nodes_key());
        let (nodes,): (Vec<u64>,) = self.retry_once(&list).await.map_err(backend)?;
        let nodes: Vec<u64> = nodes
            .into_iter()
            .filter(|&node| node != self.node)
            .collect();
        if nodes.is_empty() {
            return Ok(Vec::new());
        }
        let mut read = redis::pipe();
        for &node in &nodes {
            read.hgetall(self.node_key(node));
        }
        let hashes: Vec<HashMap<String, String>> = self.retry_once(&read).await.map_err(backend)?;
        let mut snapshots = Vec::new();
        let mut gone = Vec::new();
        for (&node, hash) in nodes.iter().zip(hashes) {
            if hash.is_empty() {
                gone.push(node);
                continue;
            }
            let mut snapshot = NodeSnapshot {
                node,
                version: 0,
                members: Vec::new(),
            };
            for (field, value) in hash {
                if field == "version" {
                    snapshot.version = value.parse().unwrap_or(0);
                    continue;
                }
                // `{client id} {room}`; anything else is not ours and is skipped.
                let Some((client, room)) = field.split_once(' ') else {
                    continue;
                };
                let Ok(client) = client.parse() else {
                    continue;
                };
                snapshot
                    .members
                    .push((client, Arc::from(room), Arc::from(value)));
            }
            snapshots.push(snapshot);
        }
        if !gone.is_empty() {
            // A server whose snapshot expired between our two reads and then wrote again
            // is added back by its next heartbeat.
            let mut forget = redis::pipe();
            forget.srem(self.nodes_key(), gone).ignore();
            self.retry_once::<()>(&forget).await.map_err(backend)?;
        }
        Ok(snapshots)
    }

    /// Every member of every room on the other live servers. Servers whose snapshot has
    /// expired are dropped from the list of servers.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`](crate::Error::Backend) when Redis fails.
    pub async fn others(&self) -> Result<Vec<RemoteMember>> {
        let mut members = Vec::new();
        for snapshot in self.snapshots().await? {
            for (client, room, name) in snapshot.members {
                members.push(RemoteMember {
                    node: snapshot.node,
                    client,
                    room,
                    name,
                });
            }
        }
        members.sort_by(|a, b| (&a.room, a.node, a.client).cmp(&(&b.room, b.node, b.client)));
        Ok(members)
    }
}

fn update_node(update: &PresenceUpdate) -> u64 {
    match update {
        PresenceUpdate::Changed(change) => change.node,
        PresenceUpdate::Gone { node } => *node,
    }
}

/// One message of the events channel (layout in the module docs); `None` if malformed.
fn decode(payload: &[u8]) -> Option<PresenceUpdate> {
    let (&kind, rest) = payload.split_first()?;
    let (node, rest) = rest.split_first_chunk::<8>()?;
    let node = u64::from_be_bytes(*node);
    let joined = match kind {
        b'g' => return rest.is_empty().then_some(PresenceUpdate::Gone { node }),
        b'j' => true,
        b'l' => false,
        _ => return None,
    };
    let (version, rest) = rest.split_first_chunk::<8>()?;
    let (client, rest) = rest.split_first_chunk::<8>()?;
    let (room_len, rest) = rest.split_first_chunk::<2>()?;
    let (room, name) = rest.split_at_checked(usize::from(u16::from_be_bytes(*room_len)))?;
    Some(PresenceUpdate::Changed(MemberChange {
        node,
        version: u64::from_be_bytes(*version),
        client: u64::from_be_bytes(*client),
        room: Arc::from(std::str::from_utf8(room).ok()?),
        name: Arc::from(std::str::from_utf8(name).ok()?),
        joined,
    }))
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn malformed_events_are_skipped() {
        assert_eq!(decode(b""), None);
        assert_eq!(decode(b"g1234567"), None);
        assert_eq!(decode(b"x12345678"), None);
        assert_eq!(decode(b"g12345678extra"), None);
        let mut short = b"j".to_vec();
        short.extend_from_slice(&[0; 24]);
        short.extend_from_slice(&9u16.to_be_bytes());
        short.extend_from_slice(b"lobby");
        assert_eq!(decode(&short), None);
        let mut bad = b"l".to_vec();
        bad.extend_from_slice(&[0; 24]);
        bad.extend_from_slice(&1u16.to_be_bytes());
        bad.extend_from_slice(&[0xff, b'a']);
        assert_eq!(decode(&bad), None);
    }
}
