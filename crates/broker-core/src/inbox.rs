//! The idempotent consumer ("inbox"): a record of the message ids a consumer has processed,
//! so that a redelivered message (after an expired ack deadline, a crash before the ack, a
//! publisher's retry) has its effect once.
//!
//! A consumer [claims](Inbox::claim) a message id before its effect. The claim is a lease:
//! [`Claim::Acquired`] means "yours, do the work", [`Claim::Done`] means the effect already
//! happened (acknowledge the message and do nothing), [`Claim::Busy`] means another
//! consumer holds the lease now (retry later). After the effect the consumer
//! [completes](Inbox::complete) the claim, which keeps the id as done for a while; after a
//! failure it [releases](Inbox::release) it, so a retry may claim it again. A consumer that
//! dies while holding a lease loses it when the lease expires: give leases the queue's ack
//! wait, so the redelivery can claim the id.
//!
//! The inbox cannot make "effect, then complete" atomic with an effect in another store: a
//! crash between the two repeats the effect once. Put the effect and the completion in one
//! transaction where that matters (see the transactional outbox in issue 17).
//!
//! ```
//! use std::time::{Duration, Instant};
//! use broker_core::{Claim, MemoryInbox, MessageId};
//!
//! let inbox = MemoryInbox::new();
//! let id = MessageId::new();
//! let t0 = Instant::now();
//! let lease = Duration::from_secs(30);
//! let Claim::Acquired(token) = inbox.claim_at(id, lease, t0) else { unreachable!() };
//! // A second delivery while the first is processed: busy.
//! assert_eq!(inbox.claim_at(id, lease, t0), Claim::Busy);
//! // ... the effect ...
//! inbox.complete_at(id, &token, Duration::from_secs(3600), t0);
//! // A redelivery after the effect: done, do nothing.
//! assert_eq!(inbox.claim_at(id, lease, t0 + Duration::from_secs(60)), Claim::Done);
//! // After the retention period the id is forgotten.
//! assert!(matches!(inbox.claim_at(id, lease, t0 + Duration::from_secs(3601)), Claim::Acquired(_)));
//! ```

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::{MessageId, Result};

/// What a [claim](Inbox::claim) found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Claim {
    /// The id is now leased to this consumer: do the effect, then complete or release.
    Acquired(LeaseToken),
    /// The effect already happened: settle the message without doing it again.
    Done,
    /// Another consumer holds the lease: try again after a while.
    Busy,
}

/// Identifies one lease, so that releasing it never drops another consumer's lease.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LeaseToken(String);

impl LeaseToken {
    fn fresh() -> Self {
        Self(uuid::Uuid::now_v7().simple().to_string())
    }

    /// The token as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where an idempotent consumer records what it processed. Methods return `Send` futures.
pub trait Inbox: Send + Sync {
    /// Leases `id` for `lease` unless it is done or leased to someone else.
    fn claim(&self, id: MessageId, lease: Duration) -> impl Future<Output = Result<Claim>> + Send;

    /// Marks `id` done for `keep` (a redelivery within it gets [`Claim::Done`]).
    fn complete(
        &self,
        id: MessageId,
        token: &LeaseToken,
        keep: Duration,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Gives up the lease after a failed effect, if it is still this one.
    fn release(&self, id: MessageId, token: &LeaseToken)
    -> impl Future<Output = Result<()>> + Send;
}

#[derive(Debug)]
enum State {
    Leased(LeaseToken),
    Done,
}

#[derive(Debug, Default)]
struct Entries {
    by_id: HashMap<MessageId, (State, Instant)>,
    /// `(expiry, id)` of every entry, so expired ones are dropped in order.
    expiries: BTreeSet<(Instant, MessageId)>,
}

impl Entries {
    fn purge(&mut self, now: Instant) {
        while let Some(&(expiry, id)) = self.expiries.first() {
            if expiry > now {
                break;
            }
            self.expiries.pop_first();
            self.by_id.remove(&id);
        }
    }

    fn put(&mut self, id: MessageId, state: State, expiry: Instant) {
        if let Some((_, old)) = self.by_id.insert(id, (state, expiry)) {
            self.expiries.remove(&(old, id));
        }
        self.expiries.insert((expiry, id));
    }
}

/// An inbox in process memory: for one process, and for tests. Entries expire; the time
/// is an input ([`claim_at`](Self::claim_at) and friends), the [`Inbox`] methods read the
/// system clock.
#[derive(Debug, Default)]
pub struct MemoryInbox {
    entries: Mutex<Entries>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every mutation completes before anything can panic, so a poisoned lock holds
    // consistent data.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn after(now: Instant, d: Duration) -> Instant {
    // Far-future durations saturate to about a century rather than overflow.
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
        .unwrap_or(now)
}

impl MemoryInbox {
    /// An empty inbox.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// [`Inbox::claim`] at `now`.
    pub fn claim_at(&self, id: MessageId, lease: Duration, now: Instant) -> Claim {
        let mut entries = lock(&self.entries);
        entries.purge(now);
        match entries.by_id.get(&id) {
            Some((State::Done, _)) => Claim::Done,
            Some((State::Leased(_), _)) => Claim::Busy,
            None => {
                let token = LeaseToken::fresh();
                entries.put(id, State::Leased(token.clone()), after(now, lease));
                Claim::Acquired(token)
            }
        }
    }

    /// [`Inbox::complete`] at `now`.
    pub fn complete_at(&self, id: MessageId, _token: &LeaseToken, keep: Duration, now: Instant) {
        let mut entries = lock(&self.entries);
        entries.purge(now);
        // Done even if the lease expired meanwhile: the effect happened.
        entries.put(id, State::Done, after(now, keep));
    }

    /// [`Inbox::release`].
    pub fn release_lease(&self, id: MessageId, token: &LeaseToken) {
        let mut entries = lock(&self.entries);
        if let Some((State::Leased(held), expiry)) = entries.by_id.get(&id)
            && held == token
        {
            let expiry = *expiry;
            entries.by_id.remove(&id);
            entries.expiries.remove(&(expiry, id));
        }
    }

    /// How many ids are leased or done (expired ones included until the next call).
    #[must_use]
    pub fn len(&self) -> usize {
        lock(&self.entries).by_id.len()
    }

    /// Whether the inbox holds no ids.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inbox for MemoryInbox {
    fn claim(&self, id: MessageId, lease: Duration) -> impl Future<Output = Result<Claim>> + Send {
        std::future::ready(Ok(self.claim_at(id, lease, Instant::now())))
    }

    fn complete(
        &self,
        id: MessageId,
        token: &LeaseToken,
        keep: Duration,
    ) -> impl Future<Output = Result<()>> + Send {
        self.complete_at(id, token, keep, Instant::now());
        std::future::ready(Ok(()))
    }

    fn release(
        &self,
        id: MessageId,
        token: &LeaseToken,
    ) -> impl Future<Output = Result<()>> + Send {
        self.release_lease(id, token);
        std::future::ready(Ok(()))
    }
}

#[cfg(feature = "redis")]
pub use self::redis_inbox::RedisInbox;

#[cfg(feature = "redis")]
mod redis_inbox {
    use std::time::Duration;

    use redis::Script;
    use redis::aio::ConnectionManager;

    use super::{Claim, Inbox, LeaseToken};
    use crate::{Error, MessageId, Result};

    /// KEYS: the id's key. ARGV: lease value, lease ms. `SET NX PX` takes the lease; else the
    /// value says whether it is done or leased.
    const CLAIM: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 'acquired' end
local held = redis.call('GET', KEYS[1])
if held == 'done' then return 'done' end
return 'busy'
";

    /// KEYS: the id's key. ARGV: lease value. Deletes the key only while it holds this lease.
    const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

    fn backend(e: &redis::RedisError) -> Error {
        Error::Backend {
            backend: "redis",
            detail: e.to_string(),
        }
    }

    fn ms(d: Duration) -> u64 {
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
    }

    /// An inbox in Redis (feature `redis`), shared by every process of a consumer group:
    /// one key per message id, `<prefix>inbox:<id>`, holding `lease:<token>` with the lease
    /// as its expiry (`SET NX PX`), then `done` with the retention as its expiry.
    #[derive(Clone)]
    pub struct RedisInbox {
        conn: ConnectionManager,
        prefix: String,
        claim: Script,
        release: Script,
    }

    impl std::fmt::Debug for RedisInbox {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("RedisInbox")
                .field("prefix", &self.prefix)
                .finish_non_exhaustive()
        }
    }

    impl RedisInbox {
        /// Connects to `url` (`redis://host:port/db`); keys start with `prefix`.
        ///
        /// # Errors
        /// [`Error::Backend`] when the URL is invalid or the server cannot be reached.
        pub async fn connect(url: &str, prefix: &str) -> Result<Self> {
            let client = crate::redis::open_client(url)?;
            let conn = client
                .get_connection_manager()
                .await
                .map_err(|e| backend(&e))?;
            Ok(Self {
                conn,
                prefix: prefix.to_owned(),
                claim: Script::new(CLAIM),
                release: Script::new(RELEASE),
            })
        }

        fn key(&self, id: MessageId) -> String {
            format!("{}inbox:{id}", self.prefix)
        }
    }

    fn lease_value(token: &LeaseToken) -> String {
        format!("lease:{}", token.as_str())
    }

    impl Inbox for RedisInbox {
        async fn claim(&self, id: MessageId, lease: Duration) -> Result<Claim> {
            let token = LeaseToken::fresh();
            let mut conn = self.conn.clone();
            let found: String = self
                .claim
                .key(self.key(id))
                .arg(lease_value(&token))
                .arg(ms(lease))
                .invoke_async(&mut conn)
                .await
                .map_err(|e| backend(&e))?;
            Ok(match found.as_str() {
                "acquired" => Claim::Acquired(token),
                "done" => Claim::Done,
                _ => Claim::Busy,
            })
        }

        async fn complete(&self, id: MessageId, _token: &LeaseToken, keep: Duration) -> Result<()> {
            let mut conn = self.conn.clone();
            redis::cmd("SET")
                .arg(self.key(id))
                .arg("done")
                .arg("PX")
                .arg(ms(keep))
                .query_async::<()>(&mut conn)
                .await
                .map_err(|e| backend(&e))
        }

        async fn release(&self, id: MessageId, token: &LeaseToken) -> Result<()> {
            let mut conn = self.conn.clone();
            self.release
                .key(self.key(id))
                .arg(lease_value(token))
                .invoke_async::<i64>(&mut conn)
                .await
                .map(|_| ())
                .map_err(|e| backend(&e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_expire_release_is_by_token_and_done_is_kept() {
        let inbox = MemoryInbox::new();
        let (a, b) = (MessageId::new(), MessageId::new());
        let t0 = Instant::now();
        let lease = Duration::from_secs(10);
        let Claim::Acquired(first) = inbox.claim_at(a, lease, t0) else {
            unreachable!("a fresh id is acquired")
        };
        assert_eq!(
            inbox.claim_at(a, lease, t0 + Duration::from_secs(9)),
            Claim::Busy
        );
        // The holder died: the lease expires and a redelivery can claim it.
        let t1 = t0 + Duration::from_secs(10);
        let Claim::Acquired(second) = inbox.claim_at(a, lease, t1) else {
            unreachable!("an expired lease is free")
        };
        assert_ne!(first, second);
        // The first holder's late release does not drop the second one's lease.
        inbox.release_lease(a, &first);
        assert_eq!(inbox.claim_at(a, lease, t1), Claim::Busy);
        inbox.release_lease(a, &second);
        assert!(matches!(inbox.claim_at(a, lease, t1), Claim::Acquired(_)));
        // Done outlives a lease; other ids are independent.
        let Claim::Acquired(tb) = inbox.claim_at(b, lease, t1) else {
            unreachable!("b is fresh")
        };
        inbox.complete_at(b, &tb, Duration::from_secs(100), t1);
        inbox.release_lease(b, &tb);
        assert_eq!(inbox.len(), 2);
        assert_eq!(
            inbox.claim_at(b, lease, t1 + Duration::from_secs(99)),
            Claim::Done
        );
        // a's lease expired long ago: dropped by that call.
        assert_eq!(inbox.len(), 1);
        // Everything has expired by now: the purge empties the map.
        assert!(matches!(
            inbox.claim_at(b, lease, t1 + Duration::from_secs(100)),
            Claim::Acquired(_)
        ));
        assert_eq!(inbox.len(), 1);
        assert!(!inbox.is_empty());
        // A duration past the clock's range does not panic.
        let c = MessageId::new();
        assert!(matches!(
            inbox.claim_at(c, Duration::MAX, t1),
            Claim::Acquired(_)
        ));
    }
}
