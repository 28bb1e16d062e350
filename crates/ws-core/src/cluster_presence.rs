//! Who is in which room on the *other* servers, and the joins and leaves a server announces
//! to its own clients, as a sans-IO state machine: [`PresenceView`] takes what the other
//! servers said (live [`MemberChange`]s, periodic [`NodeSnapshot`]s, a graceful
//! [`PresenceUpdate::Gone`]) and hands out [`RemotePresence`] events with
//! [`PresenceView::poll_event`]. [`RedisPresence`](crate::RedisPresence) (feature `redis`)
//! carries the updates; this module does no IO.
//!
//! A remote member is a name in a room: a name connected to a room on several other
//! servers (two tabs behind a load balancer) is announced as joined when its first
//! connection anywhere else joins and as left when its last one leaves, so each client
//! hears each change exactly once. (This server's own members are the hub's business: its
//! presence events stay per connection.)
//!
//! Each server numbers its membership changes ([`Hub::membership_version`](crate::Hub::membership_version));
//! a change or snapshot older than what the view already applied for that server is
//! ignored, so a snapshot read before a live change arrived cannot undo it, and a snapshot
//! repairs changes lost while the pub/sub link was down. A server whose snapshot expired
//! (it was killed) disappears from the snapshots: its members are announced as left.
//!
//! ```
//! use ws_core::{MemberChange, NodeSnapshot, PresenceUpdate, PresenceView};
//! let mut view = PresenceView::new(1);
//! view.handle_update(PresenceUpdate::Changed(MemberChange {
//!     node: 2, version: 1, client: 7, room: "lobby".into(), name: "ada".into(), joined: true,
//! }));
//! let joined = view.poll_event().unwrap();
//! assert!(joined.joined && &*joined.name == "ada");
//! // The next sweep lists her in server 2's snapshot: nothing new to announce.
//! view.handle_snapshots([NodeSnapshot {
//!     node: 2, version: 1, members: vec![(7, "lobby".into(), "ada".into())],
//! }]);
//! assert_eq!(view.poll_event(), None);
//! // Server 2 stops refreshing its snapshot (SIGKILL): a later sweep no longer lists it.
//! view.handle_snapshots(Vec::<NodeSnapshot>::new());
//! let left = view.poll_event().unwrap();
//! assert!(!left.joined && &*left.room == "lobby");
//! ```

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

/// A join or leave on another server, numbered by that server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberChange {
    /// The server.
    pub node: u64,
    /// The server's membership version after this change (it counts from 1).
    pub version: u64,
    /// The member's id on that server.
    pub client: u64,
    /// The room.
    pub room: Arc<str>,
    /// The member's name.
    pub name: Arc<str>,
    /// `true` for a join, `false` for a leave.
    pub joined: bool,
}

/// Everything one other server has in its rooms, as of one of its membership versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSnapshot {
    /// The server.
    pub node: u64,
    /// Its membership version when the snapshot was taken.
    pub version: u64,
    /// (member id there, room, name).
    pub members: Vec<(u64, Arc<str>, Arc<str>)>,
}

/// What another server said, live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceUpdate {
    /// A member joined or left.
    Changed(MemberChange),
    /// The server stopped gracefully: every member it had is gone, and what it says later
    /// (a late change, a last snapshot) is ignored.
    Gone {
        /// The server.
        node: u64,
    },
}

/// A name joined or left a room on the other servers (see the module docs for when).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemotePresence {
    /// The room.
    pub room: Arc<str>,
    /// The member's name.
    pub name: Arc<str>,
    /// `true` for a join, `false` for a leave.
    pub joined: bool,
}

/// How many servers that stopped gracefully are remembered (to ignore their late words).
const GONE_REMEMBERED: usize = 256;

#[derive(Debug, Default)]
struct NodeView {
    version: u64,
    /// (member id, room) -> name.
    members: HashMap<(u64, Arc<str>), Arc<str>>,
    /// Seen in a snapshot: its absence from the next one means it expired.
    confirmed: bool,
    /// Sweeps in a row that did not list a server known only from its live changes.
    misses: u8,
}

/// The other servers' members, and the presence events to announce; see the module docs.
#[derive(Debug)]
pub struct PresenceView {
    own: u64,
    nodes: HashMap<u64, NodeView>,
    /// (room, name) -> connections on the other servers.
    counts: HashMap<(Arc<str>, Arc<str>), usize>,
    gone: VecDeque<u64>,
    events: VecDeque<RemotePresence>,
}

impl PresenceView {
    /// An empty view for the server `own` (whose own updates are ignored).
    pub fn new(own: u64) -> Self {
        Self {
            own,
            nodes: HashMap::new(),
            counts: HashMap::new(),
            gone: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Applies a live update from another server.
    pub fn handle_update(&mut self, update: PresenceUpdate) {
        match update {
            PresenceUpdate::Changed(change) => {
                if change.node == self.own || self.gone.contains(&change.node) {
                    return;
                }
                let node = self.nodes.entry(change.node).or_default();
                if change.version <= node.version {
                    return;
                }
                node.version = change.version;
                let key = (change.client, change.room.clone());
                if change.joined {
                    if node.members.insert(key, change.name.clone()).is_none() {
                        add(&mut self.counts, &mut self.events, change.room, change.name);
                    }
                } else if let Some(name) = node.members.remove(&key) {
                    remove(&mut self.counts, &mut self.events, change.room, name);
                }
            }
            PresenceUpdate::Gone { node } => {
                if node == self.own {
                    return;
                }
                self.drop_node(node);
                if !self.gone.contains(&node) {
                    if self.gone.len() == GONE_REMEMBERED {
                        self.gone.pop_front();
                    }
                    self.gone.push_back(node);
                }
            }
        }
    }

    /// Applies a sweep: the snapshots of *every* other live server. A server in the view
    /// but not in the sweep expired (it was killed, or lost its snapshot when Redis
    /// restarted empty): its members leave. One known only from live changes (it has not
    /// written its first snapshot yet) gets one more sweep.
    pub fn handle_snapshots(&mut self, snapshots: impl IntoIterator<Item = NodeSnapshot>) {
        let mut listed = BTreeSet::new();
        for snapshot in snapshots {
            if snapshot.node == self.own || self.gone.contains(&snapshot.node) {
                continue;
            }
            listed.insert(snapshot.node);
            let node = self.nodes.entry(snapshot.node).or_default();
            node.confirmed = true;
            node.misses = 0;
            if snapshot.version < node.version {
                // Older than a change already applied: the next sweep brings a newer one.
                continue;
            }
            node.version = snapshot.version;
            let mut fresh: HashMap<(u64, Arc<str>), Arc<str>> = snapshot
                .members
                .into_iter()
                .map(|(client, room, name)| ((client, room), name))
                .collect();
            let old = std::mem::take(&mut node.members);
            for (key, name) in old {
                match fresh.remove(&key) {
                    Some(new_name) if new_name == name => {
                        node.members.insert(key, name);
                    }
                    Some(new_name) => {
                        remove(&mut self.counts, &mut self.events, key.1.clone(), name);
                        add(
                            &mut self.counts,
                            &mut self.events,
                            key.1.clone(),
                            new_name.clone(),
                        );
                        node.members.insert(key, new_name);
                    }
                    None => remove(&mut self.counts, &mut self.events, key.1, name),
                }
            }
            for (key, name) in fresh {
                add(
                    &mut self.counts,
                    &mut self.events,
                    key.1.clone(),
                    name.clone(),
                );
                node.members.insert(key, name);
            }
        }
        let expired: Vec<u64> = self
            .nodes
            .iter_mut()
            .filter(|(id, _)| !listed.contains(*id))
            .filter_map(|(id, node)| {
                node.misses = node.misses.saturating_add(1);
                (node.confirmed || node.misses >= 2).then_some(*id)
            })
            .collect();
        for node in expired {
            self.drop_node(node);
        }
    }

    /// The next join or leave to announce to this server's clients in that room.
    pub fn poll_event(&mut self) -> Option<RemotePresence> {
        self.events.pop_front()
    }

    /// The names in `room` on the other servers, sorted, each once.
    pub fn members(&self, room: &str) -> Vec<Arc<str>> {
        let mut names: Vec<Arc<str>> = self
            .counts
            .keys()
            .filter(|(r, _)| &**r == room)
            .map(|(_, name)| name.clone())
            .collect();
        names.sort();
        names
    }

    /// Every connection in `room` on the other servers: (server, member id there, name),
    /// sorted.
    pub fn connections(&self, room: &str) -> Vec<(u64, u64, Arc<str>)> {
        let mut out: Vec<_> = self
            .nodes
            .iter()
            .flat_map(|(&node, view)| {
                view.members
                    .iter()
                    .filter(move |((_, r), _)| &**r == room)
                    .map(move |((client, _), name)| (node, *client, name.clone()))
            })
            .collect();
        out.sort();
        out
    }

    /// How many other servers the view knows.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    fn drop_node(&mut self, node: u64) {
        if let Some(view) = self.nodes.remove(&node) {
            let mut members: Vec<_> = view.members.into_iter().collect();
            members.sort();
            for ((_, room), name) in members {
                remove(&mut self.counts, &mut self.events, room, name);
            }
        }
    }
}

fn add(
    counts: &mut HashMap<(Arc<str>, Arc<str>), usize>,
    events: &mut VecDeque<RemotePresence>,
    room: Arc<str>,
    name: Arc<str>,
) {
    let count = counts.entry((room.clone(), name.clone())).or_insert(0);
    *count += 1;
    if *count == 1 {
        events.push_back(RemotePresence {
            room,
            name,
            joined: true,
        });
    }
}

fn remove(
    counts: &mut HashMap<(Arc<str>, Arc<str>), usize>,
    events: &mut VecDeque<RemotePresence>,
    room: Arc<str>,
    name: Arc<str>,
) {
    let key = (room, name);
    let Some(count) = counts.get_mut(&key) else {
        return;
    };
    *count = count.saturating_sub(1);
    if *count == 0 {
        counts.remove(&key);
        let (room, name) = key;
        events.push_back(RemotePresence {
            room,
            name,
            joined: false,
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn change(node: u64, version: u64, client: u64, name: &str, joined: bool) -> PresenceUpdate {
        PresenceUpdate::Changed(MemberChange {
            node,
            version,
            client,
            room: "lobby".into(),
            name: name.into(),
            joined,
        })
    }

    fn snapshot(node: u64, version: u64, members: &[(u64, &str)]) -> NodeSnapshot {
        NodeSnapshot {
            node,
            version,
            members: members
                .iter()
                .map(|&(client, name)| (client, "lobby".into(), name.into()))
                .collect(),
        }
    }

    fn events(view: &mut PresenceView) -> Vec<(String, bool)> {
        std::iter::from_fn(|| view.poll_event())
            .map(|event| (event.name.to_string(), event.joined))
            .collect()
    }

    #[test]
    fn a_change_is_announced_once_whether_it_comes_live_or_in_a_snapshot() {
        let mut view = PresenceView::new(1);
        view.handle_update(change(2, 1, 7, "ada", true));
        assert_eq!(events(&mut view), [("ada".to_owned(), true)]);
        // The next sweep lists her too: nothing new.
        view.handle_snapshots([snapshot(2, 1, &[(7, "ada")])]);
        assert!(events(&mut view).is_empty());
        // A snapshot reached before a live change: the change is not announced again.
        view.handle_snapshots([snapshot(2, 2, &[(7, "ada"), (8, "bob")])]);
        assert_eq!(events(&mut view), [("bob".to_owned(), true)]);
        view.handle_update(change(2, 2, 8, "bob", true));
        assert!(events(&mut view).is_empty());
        // A stale snapshot (read before bob left) does not bring him back.
        view.handle_update(change(2, 3, 8, "bob", false));
        assert_eq!(events(&mut view), [("bob".to_owned(), false)]);
        view.handle_snapshots([snapshot(2, 2, &[(7, "ada"), (8, "bob")])]);
        assert!(events(&mut view).is_empty());
        assert_eq!(view.members("lobby"), [Arc::from("ada")]);
        // Our own updates are not remote.
        view.handle_update(change(1, 9, 1, "me", true));
        assert!(events(&mut view).is_empty());
    }

    #[test]
    fn a_snapshot_repairs_changes_lost_in_transit() {
        let mut view = PresenceView::new(1);
        view.handle_update(change(2, 1, 7, "ada", true));
        // Versions 2 (bob joined) and 3 (ada left) were lost; 4 arrives.
        view.handle_update(change(2, 4, 9, "cy", true));
        assert_eq!(
            events(&mut view),
            [("ada".to_owned(), true), ("cy".to_owned(), true)]
        );
        view.handle_snapshots([snapshot(2, 4, &[(8, "bob"), (9, "cy")])]);
        assert_eq!(
            events(&mut view),
            [("ada".to_owned(), false), ("bob".to_owned(), true)]
        );
    }

    #[test]
    fn a_name_on_two_servers_leaves_when_its_last_connection_does() {
        let mut view = PresenceView::new(1);
        view.handle_update(change(2, 1, 7, "ada", true));
        view.handle_update(change(3, 1, 4, "ada", true));
        assert_eq!(events(&mut view), [("ada".to_owned(), true)]);
        assert_eq!(view.connections("lobby").len(), 2);
        view.handle_update(change(2, 2, 7, "ada", false));
        assert!(events(&mut view).is_empty());
        assert_eq!(view.members("lobby"), [Arc::from("ada")]);
        view.handle_update(PresenceUpdate::Gone { node: 3 });
        assert_eq!(events(&mut view), [("ada".to_owned(), false)]);
        assert!(view.members("lobby").is_empty());
    }

    #[test]
    fn a_server_that_expired_or_left_takes_its_members_along_once() {
        let mut view = PresenceView::new(1);
        view.handle_snapshots([snapshot(2, 3, &[(7, "ada")]), snapshot(3, 1, &[(1, "bob")])]);
        assert_eq!(events(&mut view).len(), 2);
        // Server 2 is not listed any more (its snapshot expired): ada leaves, once.
        view.handle_snapshots([snapshot(3, 1, &[(1, "bob")])]);
        assert_eq!(events(&mut view), [("ada".to_owned(), false)]);
        view.handle_snapshots([snapshot(3, 1, &[(1, "bob")])]);
        assert!(events(&mut view).is_empty());
        // Server 3 stops gracefully; its late words are ignored.
        view.handle_update(PresenceUpdate::Gone { node: 3 });
        assert_eq!(events(&mut view), [("bob".to_owned(), false)]);
        view.handle_update(change(3, 2, 1, "bob", false));
        view.handle_update(change(3, 3, 2, "cy", true));
        view.handle_snapshots([snapshot(3, 3, &[(2, "cy")])]);
        assert!(events(&mut view).is_empty());
        assert_eq!(view.node_count(), 0);
    }

    #[test]
    fn a_server_seen_only_live_gets_one_sweep_to_write_its_snapshot() {
        let mut view = PresenceView::new(1);
        view.handle_update(change(2, 1, 7, "ada", true));
        let _ = events(&mut view);
        view.handle_snapshots(Vec::new());
        assert!(events(&mut view).is_empty());
        view.handle_snapshots(Vec::new());
        assert_eq!(events(&mut view), [("ada".to_owned(), false)]);
    }
}
