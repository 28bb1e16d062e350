//! Rooms, presence, direct messages, bounded per-client queues with a slow-consumer
//! policy, heartbeats and graceful shutdown, as a sans-IO state machine: every call takes
//! the current time, output is pulled with [`Hub::poll_transmit`], and
//! [`Hub::poll_timeout`] says when to call [`Hub::handle_timeout`] next.
//!
//! ```
//! use std::time::Instant;
//! use ws_core::{Hub, HubConfig, Message, Outgoing};
//! let now = Instant::now();
//! let mut hub = Hub::new(HubConfig::default());
//! let ada = hub.connect("ada", now).unwrap();
//! let bob = hub.connect("bob", now).unwrap();
//! hub.join(ada, "lobby", now).unwrap();
//! hub.join(bob, "lobby", now).unwrap();
//! hub.broadcast(ada, "lobby", Message::text("hi"), now).unwrap();
//! // bob sees ada's presence, his own join, then the message.
//! let mut got = Vec::new();
//! while let Some(out) = hub.poll_transmit(bob) { got.push(out); }
//! assert!(matches!(got.last(), Some(Outgoing::Message { .. })));
//! ```

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tungstenite::Message;
use tungstenite::protocol::frame::coding::CloseCode;

use crate::cluster_presence::RemotePresence;
use crate::error::{Error, Result};

/// A client of a hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(u64);

impl ClientId {
    /// The numeric id (unique within one hub).
    pub fn get(self) -> u64 {
        self.0
    }
}

/// What to do when a client's queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlowConsumer {
    /// Drop the oldest queued messages to make room (good for live feeds).
    DropOldest,
    /// Drop the message that does not fit.
    DropNewest,
    /// Close the connection with this code (1008 policy or 1013 try again later).
    Disconnect(CloseCode),
}

/// Hub settings.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Most messages queued per client (default 256).
    pub queue_messages: usize,
    /// Most payload bytes queued per client (default 1 MiB).
    pub queue_bytes: usize,
    /// What happens when a queue is full (default: disconnect with 1013).
    pub slow_consumer: SlowConsumer,
    /// Idle time after which a client is pinged (default 30 s).
    pub ping_interval: Duration,
    /// Time a pinged client has to show activity before it is closed (default 10 s).
    pub pong_timeout: Duration,
    /// Time clients get to drain their queues after [`Hub::shutdown`] (default 5 s).
    pub shutdown_grace: Duration,
    /// Most rooms one client may be in at once (default 64); [`Hub::join`] refuses more
    /// with [`Error::TooManyRooms`]. Without a cap one connection could create rooms
    /// (and their member sets) without end.
    pub max_rooms_per_client: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            queue_messages: 256,
            queue_bytes: 1 << 20,
            slow_consumer: SlowConsumer::Disconnect(CloseCode::Again),
            ping_interval: Duration::from_secs(30),
            pong_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(5),
            max_rooms_per_client: 64,
        }
    }
}

/// A join or leave in a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    /// The room.
    pub room: Arc<str>,
    /// Who joined or left.
    pub client: ClientId,
    /// Their name.
    pub name: Arc<str>,
    /// `true` for a join, `false` for a leave.
    pub joined: bool,
}

/// Something a client's connection should send.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    /// A message to deliver.
    Message {
        /// The room it was broadcast to, `None` for a direct message.
        room: Option<Arc<str>>,
        /// The sender.
        from: ClientId,
        /// The payload.
        message: Message,
    },
    /// A join or leave in one of the client's rooms.
    Presence(Arc<Presence>),
    /// A join or leave in one of the client's rooms on another server (see
    /// [`Hub::deliver_remote_presence`]).
    RemotePresence(Arc<RemotePresence>),
    /// Send a ping (heartbeat).
    Ping,
    /// Close the connection with this code and reason, then forget the client.
    Close(CloseCode, &'static str),
}

impl Outgoing {
    fn size(&self) -> usize {
        match self {
            Self::Message { message, .. } => message.len(),
            Self::Presence(presence) => presence.name.len() + presence.room.len(),
            Self::RemotePresence(presence) => presence.name.len() + presence.room.len(),
            Self::Ping | Self::Close(..) => 0,
        }
    }
}

#[derive(Debug)]
struct Client {
    name: Arc<str>,
    rooms: HashSet<Arc<str>>,
    queue: VecDeque<Outgoing>,
    queued_bytes: usize,
    dropped: u64,
    last_activity: Instant,
    pong_deadline: Option<Instant>,
    /// A close is queued: nothing more is enqueued.
    closing: bool,
    /// In the ready list already.
    ready: bool,
}

/// A room broadcast made on this hub, for other hubs (see [`Hub::poll_publish`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Publication {
    /// The room.
    pub room: Arc<str>,
    /// The payload.
    pub message: Message,
}

/// A join or leave on this hub, numbered, for other hubs (see
/// [`Hub::poll_membership_change`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipChange {
    /// The hub's [`membership_version`](Hub::membership_version) after the change.
    pub version: u64,
    /// The join or leave.
    pub presence: Arc<Presence>,
}

/// The hub: clients, rooms and their queues.
#[derive(Debug)]
pub struct Hub {
    config: HubConfig,
    next_id: u64,
    clients: HashMap<ClientId, Client>,
    rooms: HashMap<Arc<str>, HashSet<ClientId>>,
    ready: Vec<ClientId>,
    publish: bool,
    outbox: VecDeque<Publication>,
    shutdown_deadline: Option<Instant>,
    membership_version: u64,
    share_memberships: bool,
    changes: VecDeque<MembershipChange>,
}

impl Hub {
    /// An empty hub.
    pub fn new(config: HubConfig) -> Self {
        Self {
            config,
            next_id: 1,
            clients: HashMap::new(),
            rooms: HashMap::new(),
            ready: Vec::new(),
            publish: false,
            outbox: VecDeque::new(),
            shutdown_deadline: None,
            membership_version: 0,
            share_memberships: false,
            changes: VecDeque::new(),
        }
    }

    /// Also records every join and leave, numbered, for other hubs
    /// ([`poll_membership_change`](Self::poll_membership_change)); drain them, or the
    /// record grows.
    pub fn enable_membership_changes(&mut self, yes: bool) {
        self.share_memberships = yes;
        if !yes {
            self.changes.clear();
        }
    }

    /// How many joins and leaves this hub has seen: the version a snapshot of
    /// [`memberships`](Self::memberships) taken now reflects.
    pub fn membership_version(&self) -> u64 {
        self.membership_version
    }

    /// The next join or leave to hand to other hubs, oldest first.
    pub fn poll_membership_change(&mut self) -> Option<MembershipChange> {
        self.changes.pop_front()
    }

    /// Delivers another server's join or leave (see
    /// [`PresenceView`](crate::PresenceView)) to this hub's members of its room; returns
    /// how many queues took it.
    pub fn deliver_remote_presence(&mut self, presence: RemotePresence) -> usize {
        let Some((room, _)) = self.rooms.get_key_value(&*presence.room) else {
            return 0;
        };
        let room = room.clone();
        self.fan_out(&room, &Outgoing::RemotePresence(Arc::new(presence)))
    }

    fn record_change(&mut self, presence: &Arc<Presence>) {
        self.membership_version += 1;
        if self.share_memberships {
            self.changes.push_back(MembershipChange {
                version: self.membership_version,
                presence: presence.clone(),
            });
        }
    }

    /// Also records room broadcasts for other hubs ([`poll_publish`](Self::poll_publish)).
    pub fn enable_publishing(&mut self, yes: bool) {
        self.publish = yes;
    }

    /// Registers a client.
    ///
    /// # Errors
    ///
    /// [`Error::ShuttingDown`] after [`shutdown`](Self::shutdown).
    pub fn connect(&mut self, name: impl Into<Arc<str>>, now: Instant) -> Result<ClientId> {
        if self.shutdown_deadline.is_some() {
            return Err(Error::ShuttingDown);
        }
        let id = ClientId(self.next_id);
        self.next_id += 1;
        self.clients.insert(
            id,
            Client {
                name: name.into(),
                rooms: HashSet::new(),
                queue: VecDeque::new(),
                queued_bytes: 0,
                dropped: 0,
                last_activity: now,
                pong_deadline: None,
                closing: false,
                ready: false,
            },
        );
        Ok(id)
    }

    /// Forgets a client (its connection ended); its rooms see it leave.
    pub fn disconnect(&mut self, id: ClientId, now: Instant) {
        let rooms: Vec<Arc<str>> = self
            .clients
            .get(&id)
            .map(|c| c.rooms.iter().cloned().collect())
            .unwrap_or_default();
        for room in rooms {
            let _ = self.leave(id, &room, now);
        }
        self.clients.remove(&id);
    }

    /// Number of connected clients.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Whether no client is connected.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// The client with this numeric id, if connected (ids come from [`ClientId::get`]).
    pub fn client(&self, id: u64) -> Option<ClientId> {
        let id = ClientId(id);
        self.clients.contains_key(&id).then_some(id)
    }

    /// A client's name.
    pub fn name(&self, id: ClientId) -> Option<&str> {
        self.clients.get(&id).map(|c| &*c.name)
    }

    /// Messages dropped for this client by the slow-consumer policy.
    pub fn dropped(&self, id: ClientId) -> u64 {
        self.clients.get(&id).map_or(0, |c| c.dropped)
    }

    /// Bytes queued for this client.
    pub fn queued_bytes(&self, id: ClientId) -> usize {
        self.clients.get(&id).map_or(0, |c| c.queued_bytes)
    }

    /// Who is in a room, ordered by id.
    pub fn members(&self, room: &str) -> Vec<(ClientId, Arc<str>)> {
        let mut out: Vec<_> = self
            .rooms
            .get(room)
            .into_iter()
            .flatten()
            .filter_map(|id| self.clients.get(id).map(|c| (*id, c.name.clone())))
            .collect();
        out.sort_by_key(|(id, _)| *id);
        out
    }

    /// Every room membership in the hub, as (room, member, name): what another server needs
    /// to list this hub's members (see [`RedisPresence`](crate::RedisPresence)).
    pub fn memberships(&self) -> Vec<(Arc<str>, ClientId, Arc<str>)> {
        let mut out = Vec::new();
        for (room, ids) in &self.rooms {
            for id in ids {
                if let Some(client) = self.clients.get(id) {
                    out.push((room.clone(), *id, client.name.clone()));
                }
            }
        }
        out
    }

    /// How many clients are in a room (without building the list).
    pub fn member_count(&self, room: &str) -> usize {
        self.rooms.get(room).map_or(0, HashSet::len)
    }

    /// How many rooms have at least one member (an empty room is removed).
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// The rooms a client is in.
    pub fn rooms_of(&self, id: ClientId) -> usize {
        self.clients.get(&id).map_or(0, |c| c.rooms.len())
    }

    /// Adds a client to a room; every member (the joiner too) gets a presence event.
    ///
    /// A presence event names only who joined or left: a client that wants the whole list
    /// asks [`members`](Self::members) once, when it joins, and keeps it up to date from
    /// the events (building the list for every member on every event is quadratic).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownClient`]; [`Error::TooManyRooms`] when the client is already in
    /// [`HubConfig::max_rooms_per_client`] rooms.
    pub fn join(&mut self, id: ClientId, room: &str, now: Instant) -> Result<()> {
        let limit = self.config.max_rooms_per_client;
        let client = self.clients.get_mut(&id).ok_or(Error::UnknownClient)?;
        client.last_activity = now;
        if client.rooms.len() >= limit && !client.rooms.contains(room) {
            return Err(Error::TooManyRooms { limit });
        }
        let room: Arc<str> = self
            .rooms
            .get_key_value(room)
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| room.into());
        if !client.rooms.insert(room.clone()) {
            return Ok(());
        }
        let name = client.name.clone();
        self.rooms.entry(room.clone()).or_default().insert(id);
        let presence = Arc::new(Presence {
            room: room.clone(),
            client: id,
            name,
            joined: true,
        });
        self.record_change(&presence);
        self.fan_out(&room, &Outgoing::Presence(presence));
        Ok(())
    }

    /// Removes a client from a room; the remaining members and the leaver get a presence
    /// event.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownClient`].
    pub fn leave(&mut self, id: ClientId, room: &str, now: Instant) -> Result<()> {
        let client = self.clients.get_mut(&id).ok_or(Error::UnknownClient)?;
        client.last_activity = now;
        let Some(room) = client.rooms.take(room) else {
            return Ok(());
        };
        let left = Arc::new(Presence {
            room: room.clone(),
            client: id,
            name: client.name.clone(),
            joined: false,
        });
        self.record_change(&left);
        let presence = Outgoing::Presence(left);
        self.enqueue(id, presence.clone());
        if let Some(members) = self.rooms.get_mut(&room) {
            members.remove(&id);
            if members.is_empty() {
                self.rooms.remove(&room);
                return Ok(());
            }
        }
        self.fan_out(&room, &presence);
        Ok(())
    }

    /// Delivers a message to every member of `room` (the sender too, if a member);
    /// returns how many queues took it.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownClient`] for an unknown sender; [`Error::ShuttingDown`].
    pub fn broadcast(
        &mut self,
        from: ClientId,
        room: &str,
        message: Message,
        now: Instant,
    ) -> Result<usize> {
        if self.shutdown_deadline.is_some() {
            return Err(Error::ShuttingDown);
        }
        let sender = self.clients.get_mut(&from).ok_or(Error::UnknownClient)?;
        sender.last_activity = now;
        let Some((room, _)) = self.rooms.get_key_value(room) else {
            return Ok(0);
        };
        let room = room.clone();
        if self.publish {
            self.outbox.push_back(Publication {
                room: room.clone(),
                message: message.clone(),
            });
        }
        Ok(self.fan_out(
            &room,
            &Outgoing::Message {
                room: Some(room.clone()),
                from,
                message,
            },
        ))
    }

    /// Delivers a broadcast that another hub published (see [`poll_publish`](Self::poll_publish));
    /// it is not published again.
    pub fn deliver_remote(&mut self, room: &str, message: Message) -> usize {
        let Some((room, _)) = self.rooms.get_key_value(room) else {
            return 0;
        };
        let room = room.clone();
        self.fan_out(
            &room,
            &Outgoing::Message {
                room: Some(room.clone()),
                from: ClientId(0),
                message,
            },
        )
    }

    /// The next broadcast to hand to other hubs.
    pub fn poll_publish(&mut self) -> Option<Publication> {
        self.outbox.pop_front()
    }

    /// Sends a direct message.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownClient`] if either client is unknown.
    pub fn send_to(
        &mut self,
        from: ClientId,
        to: ClientId,
        message: Message,
        now: Instant,
    ) -> Result<()> {
        let sender = self.clients.get_mut(&from).ok_or(Error::UnknownClient)?;
        sender.last_activity = now;
        if !self.clients.contains_key(&to) {
            return Err(Error::UnknownClient);
        }
        self.enqueue(
            to,
            Outgoing::Message {
                room: None,
                from,
                message,
            },
        );
        Ok(())
    }

    /// Records that a client showed life (any frame, a pong included): it resets the
    /// heartbeat.
    pub fn handle_activity(&mut self, id: ClientId, now: Instant) {
        if let Some(client) = self.clients.get_mut(&id) {
            client.last_activity = now;
            client.pong_deadline = None;
        }
    }

    /// The next queued item for a client.
    pub fn poll_transmit(&mut self, id: ClientId) -> Option<Outgoing> {
        let client = self.clients.get_mut(&id)?;
        let item = client.queue.pop_front()?;
        client.queued_bytes = client.queued_bytes.saturating_sub(item.size());
        Some(item)
    }

    /// Clients whose queue got items since the last call (to wake their connections).
    pub fn poll_ready(&mut self) -> Option<ClientId> {
        let id = self.ready.pop()?;
        if let Some(client) = self.clients.get_mut(&id) {
            client.ready = false;
        }
        Some(id)
    }

    /// When [`handle_timeout`](Self::handle_timeout) should run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let heartbeats = self.clients.values().filter(|c| !c.closing).map(|c| {
            c.pong_deadline
                .unwrap_or(c.last_activity + self.config.ping_interval)
        });
        heartbeats.chain(self.shutdown_deadline).min()
    }

    /// Runs heartbeats: pings idle clients, closes those that missed the pong deadline
    /// (1001), and after the shutdown grace forgets clients that did not drain.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut pings = Vec::new();
        let mut dead = Vec::new();
        for (id, client) in &mut self.clients {
            if client.closing {
                continue;
            }
            match client.pong_deadline {
                Some(deadline) if deadline <= now => dead.push(*id),
                Some(_) => {}
                None if client.last_activity + self.config.ping_interval <= now => {
                    client.pong_deadline = Some(now + self.config.pong_timeout);
                    pings.push(*id);
                }
                None => {}
            }
        }
        for id in pings {
            self.push_control(id, Outgoing::Ping, false);
        }
        for id in dead {
            self.push_control(
                id,
                Outgoing::Close(CloseCode::Away, "heartbeat timeout"),
                true,
            );
        }
        if self
            .shutdown_deadline
            .is_some_and(|deadline| deadline <= now)
        {
            let ids: Vec<ClientId> = self.clients.keys().copied().collect();
            for id in ids {
                self.disconnect(id, now);
            }
        }
    }

    /// Starts a graceful shutdown: no new clients or broadcasts; every client gets close
    /// 1001 after what is already queued, and has [`HubConfig::shutdown_grace`] to drain.
    pub fn shutdown(&mut self, now: Instant) {
        if self.shutdown_deadline.is_some() {
            return;
        }
        self.shutdown_deadline = Some(now + self.config.shutdown_grace);
        let ids: Vec<ClientId> = self.clients.keys().copied().collect();
        for id in ids {
            if let Some(client) = self.clients.get_mut(&id)
                && !client.closing
            {
                client.closing = true;
                client
                    .queue
                    .push_back(Outgoing::Close(CloseCode::Away, "server shutting down"));
                mark_ready(&mut self.ready, id, client);
            }
        }
    }

    /// Whether a close is queued for this client (or it is unknown): its connection can
    /// be dropped if it cannot even write that close.
    pub fn is_closing(&self, id: ClientId) -> bool {
        self.clients.get(&id).is_none_or(|c| c.closing)
    }

    /// Whether a shutdown is under way.
    pub fn is_shutting_down(&self) -> bool {
        self.shutdown_deadline.is_some()
    }

    fn fan_out(&mut self, room: &str, item: &Outgoing) -> usize {
        let Some(members) = self.rooms.get(room) else {
            return 0;
        };
        let mut delivered = 0;
        let size = item.size();
        for id in members {
            if let Some(client) = self.clients.get_mut(id)
                && push(
                    &self.config,
                    &mut self.ready,
                    *id,
                    client,
                    item.clone(),
                    size,
                )
            {
                delivered += 1;
            }
        }
        delivered
    }

    fn enqueue(&mut self, id: ClientId, item: Outgoing) -> bool {
        let size = item.size();
        match self.clients.get_mut(&id) {
            Some(client) => push(&self.config, &mut self.ready, id, client, item, size),
            None => false,
        }
    }

    /// Control items skip the queue limits; a close replaces everything queued.
    fn push_control(&mut self, id: ClientId, item: Outgoing, close: bool) {
        if let Some(client) = self.clients.get_mut(&id) {
            if close {
                client.queue.clear();
                client.queued_bytes = 0;
                client.closing = true;
                client.queue.push_back(item);
            } else {
                client.queue.push_front(item);
            }
            mark_ready(&mut self.ready, id, client);
        }
    }
}

fn mark_ready(ready: &mut Vec<ClientId>, id: ClientId, client: &mut Client) {
    if !client.ready {
        client.ready = true;
        ready.push(id);
    }
}

/// Queues one item under the slow-consumer policy; `true` if it was queued.
fn push(
    config: &HubConfig,
    ready: &mut Vec<ClientId>,
    id: ClientId,
    client: &mut Client,
    item: Outgoing,
    size: usize,
) -> bool {
    if client.closing {
        return false;
    }
    let fits = |c: &Client| {
        c.queue.len() < config.queue_messages && c.queued_bytes + size <= config.queue_bytes
    };
    if !fits(client) {
        match config.slow_consumer {
            SlowConsumer::DropNewest => {
                client.dropped += 1;
                return false;
            }
            SlowConsumer::DropOldest => {
                while !fits(client) {
                    let Some(old) = client.queue.pop_front() else {
                        break;
                    };
                    client.queued_bytes = client.queued_bytes.saturating_sub(old.size());
                    client.dropped += 1;
                }
                if !fits(client) {
                    // Larger than the whole queue.
                    client.dropped += 1;
                    return false;
                }
            }
            SlowConsumer::Disconnect(code) => {
                client.dropped += 1 + client.queue.len() as u64;
                client.queue.clear();
                client.queued_bytes = 0;
                client.closing = true;
                client
                    .queue
                    .push_back(Outgoing::Close(code, "slow consumer"));
                mark_ready(ready, id, client);
                return false;
            }
        }
    }
    client.queued_bytes += size;
    client.queue.push_back(item);
    mark_ready(ready, id, client);
    true
}
