//! Who is in which room over several servers (feature `redis`): each server writes a
//! snapshot of its hub's memberships to Redis on a heartbeat, with a time to live, and reads
//! the other servers' snapshots. A server that dies (even by SIGKILL, with no chance to say
//! goodbye) stops refreshing its snapshot, which expires: its members disappear from every
//! other server's list within the time to live.
//!
//! Layout: a hash per server, `{prefix}{node}` (node in hex), field `{client id} {room}`,
//! value the member's name, expiring after the time to live; the set `{prefix}nodes` lists
//! the servers that wrote one. A server whose hash has expired is removed from the set by
//! whoever reads it next.
//!
//! ```no_run
//! # async fn run(hub: &ws_core::Hub) -> ws_core::Result<()> {
//! use std::time::Duration;
//! use ws_core::RedisPresence;
//! let presence = RedisPresence::connect("redis://127.0.0.1:6379", "chat:presence:", Duration::from_secs(6)).await?;
//! // Every 2 s, well within the time to live:
//! presence.heartbeat(&hub.memberships()).await?;
//! let others = presence.others().await?;
//! for member in others.iter().filter(|member| &*member.room == "lobby") {
//!     println!("{} on server {:x}", member.name, member.node);
//! }
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;

use crate::error::Result;
use crate::hub::ClientId;
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
    /// [`Hub::memberships`](crate::Hub::memberships) lists them) and keeps it alive for the
    /// time to live.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`](crate::Error::Backend) when Redis fails.
    pub async fn heartbeat(&self, memberships: &[(Arc<str>, ClientId, Arc<str>)]) -> Result<()> {
        let key = self.node_key(self.node);
        let ttl = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        let mut pipeline = redis::pipe();
        pipeline.atomic().del(&key).ignore();
        if !memberships.is_empty() {
            let fields: Vec<(String, &str)> = memberships
                .iter()
                .map(|(room, id, name)| (format!("{} {room}", id.get()), &**name))
                .collect();
            pipeline
                .hset_multiple(&key, &fields)
                .ignore()
                .pexpire(&key, i64::try_from(ttl).unwrap_or(i64::MAX))
                .ignore();
        }
        pipeline.sadd(self.nodes_key(), self.node).ignore();
        self.retry_once::<()>(&pipeline).await.map_err(backend)
    }

    /// Removes this server's snapshot (a graceful stop; a crash lets it expire instead).
    ///
    /// # Errors
    ///
    /// [`Error::Backend`](crate::Error::Backend) when Redis fails.
    pub async fn remove(&self) -> Result<()> {
        let mut pipeline = redis::pipe();
        pipeline
            .atomic()
            .del(self.node_key(self.node))
            .ignore()
            .srem(self.nodes_key(), self.node)
            .ignore();
        self.retry_once::<()>(&pipeline).await.map_err(backend)
    }

    /// Every member of every room on the other live servers. Servers whose snapshot has
    /// expired (or that have no member) are dropped from the list of servers.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`](crate::Error::Backend) when Redis fails.
    pub async fn others(&self) -> Result<Vec<RemoteMember>> {
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
        let snapshots: Vec<HashMap<String, String>> =
            self.retry_once(&read).await.map_err(backend)?;
        let mut members = Vec::new();
        let mut gone = Vec::new();
        for (&node, snapshot) in nodes.iter().zip(snapshots) {
            if snapshot.is_empty() {
                gone.push(node);
                continue;
            }
            for (field, name) in snapshot {
                // `{client id} {room}`; anything else is not ours and is skipped.
                let Some((client, room)) = field.split_once(' ') else {
                    continue;
                };
                let Ok(client) = client.parse() else {
                    continue;
                };
                members.push(RemoteMember {
                    node,
                    client,
                    room: Arc::from(room),
                    name: Arc::from(name),
                });
            }
        }
        if !gone.is_empty() {
            // A server whose snapshot expired between our two reads and then wrote again
            // is added back by its next heartbeat.
            let mut forget = redis::pipe();
            forget.srem(self.nodes_key(), gone).ignore();
            self.retry_once::<()>(&forget).await.map_err(backend)?;
        }
        members.sort_by(|a, b| (&a.room, a.node, a.client).cmp(&(&b.room, b.node, b.client)));
        Ok(members)
    }
}
