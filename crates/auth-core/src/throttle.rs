//! Login throttling per account and per client address.
//!
//! Failed logins are counted in fixed windows, per account and per client address. When an
//! account or an address reaches its limit, further attempts are refused with
//! [`Error::Throttled`] (429, with the time until the window ends) *before* the password is
//! checked, so a locked account costs no hashing. A successful login clears the account's
//! count (not the address's: one address guessing many accounts stays limited).
//!
//! This is not general rate limiting, which is why it does not use `governor`: only failures
//! count, a success resets, and the store is a trait so that several servers can share the
//! counts in Redis (feature `redis`).
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use std::time::{Duration, UNIX_EPOCH};
//! use auth_core::{Error, LoginThrottle, MemoryAttemptStore, ThrottlePolicy};
//!
//! # async fn run() -> auth_core::Result<()> {
//! let policy = ThrottlePolicy { max_account_failures: 3, ..ThrottlePolicy::default() };
//! let throttle = LoginThrottle::new(MemoryAttemptStore::new(), policy);
//! let addr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
//! let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
//! for _ in 0..3 {
//!     throttle.check("alice", addr, now).await?;
//!     throttle.record_failure("alice", addr, now).await?;
//! }
//! assert!(matches!(throttle.check("alice", addr, now).await, Err(Error::Throttled { .. })));
//! # Ok(())
//! # }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run()).unwrap();
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{Error, Result};

/// Limits for [`LoginThrottle`].
#[derive(Debug, Clone)]
pub struct ThrottlePolicy {
    /// Failures allowed per account in a window (default 5).
    pub max_account_failures: u32,
    /// Failures allowed per client address in a window (default 20).
    pub max_address_failures: u32,
    /// The window length (default 15 minutes).
    pub window: Duration,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            max_account_failures: 5,
            max_address_failures: 20,
            window: Duration::from_secs(15 * 60),
        }
    }
}

/// A failure count and the end of its window (seconds since the Unix epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptCount {
    /// Failures in the current window.
    pub failures: u32,
    /// When the window ends.
    pub window_end: u64,
}

/// Where failure counts live.
pub trait AttemptStore: Send + Sync {
    /// The count under `key`, if its window is still open at `now`.
    fn get(&self, key: &str, now: u64)
    -> impl Future<Output = Result<Option<AttemptCount>>> + Send;
    /// Adds one failure under `key`, opening a window of `window` seconds if none is open.
    fn increment(
        &self,
        key: &str,
        window: u64,
        now: u64,
    ) -> impl Future<Output = Result<AttemptCount>> + Send;
    /// Forgets `key`.
    fn reset(&self, key: &str) -> impl Future<Output = Result<()>> + Send;
}

/// Counts failed logins and refuses attempts over the limits.
#[derive(Debug, Clone)]
pub struct LoginThrottle<S> {
    store: S,
    policy: ThrottlePolicy,
}

fn unix(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

fn account_key(account: &str) -> String {
    // Accounts are compared case-insensitively so that "Alice" and "alice" share a count.
    format!("a:{}", account.to_lowercase())
}

fn address_key(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        // One IPv6 client usually holds a whole /64: count per /64.
        IpAddr::V6(v6) => {
            let [a, b, c, d, ..] = v6.segments();
            format!("ip:{a:x}:{b:x}:{c:x}:{d:x}::/64")
        }
    }
}

impl<S: AttemptStore> LoginThrottle<S> {
    /// A throttle over `store` with `policy`.
    pub fn new(store: S, policy: ThrottlePolicy) -> Self {
        Self { store, policy }
    }

    /// Refuses with [`Error::Throttled`] when `account` or `address` is over its limit.
    /// Call it before checking the password.
    pub async fn check(&self, account: &str, address: IpAddr, now: SystemTime) -> Result<()> {
        let now = unix(now);
        for (key, limit) in [
            (account_key(account), self.policy.max_account_failures),
            (address_key(address), self.policy.max_address_failures),
        ] {
            if let Some(count) = self.store.get(&key, now).await?
                && count.failures >= limit
            {
                return Err(Error::Throttled {
                    retry_after: Duration::from_secs(count.window_end.saturating_sub(now).max(1)),
                });
            }
        }
        Ok(())
    }

    /// Records a failed login.
    pub async fn record_failure(
        &self,
        account: &str,
        address: IpAddr,
        now: SystemTime,
    ) -> Result<()> {
        let now = unix(now);
        let window = self.policy.window.as_secs().max(1);
        self.store
            .increment(&account_key(account), window, now)
            .await?;
        self.store
            .increment(&address_key(address), window, now)
            .await?;
        Ok(())
    }

    /// Records a successful login: the account's failures are forgotten.
    pub async fn record_success(&self, account: &str) -> Result<()> {
        self.store.reset(&account_key(account)).await
    }
}

/// The default number of keys the memory store tracks.
pub const DEFAULT_ATTEMPT_CAPACITY: usize = 100_000;

/// An in-memory [`AttemptStore`], bounded in keys. When full, closed windows are dropped
/// first, then the windows that close soonest.
#[derive(Debug)]
pub struct MemoryAttemptStore {
    counts: Mutex<HashMap<String, AttemptCount>>,
    capacity: usize,
}

impl Default for MemoryAttemptStore {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_ATTEMPT_CAPACITY)
    }
}

impl MemoryAttemptStore {
    /// A store tracking up to [`DEFAULT_ATTEMPT_CAPACITY`] keys.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store tracking up to `capacity` keys.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            counts: Mutex::default(),
            capacity: capacity.max(1),
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<String, AttemptCount>> {
        self.counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl AttemptStore for MemoryAttemptStore {
    async fn get(&self, key: &str, now: u64) -> Result<Option<AttemptCount>> {
        Ok(self
            .counts()
            .get(key)
            .copied()
            .filter(|count| count.window_end > now))
    }

    async fn increment(&self, key: &str, window: u64, now: u64) -> Result<AttemptCount> {
        let mut counts = self.counts();
        if !counts.contains_key(key) && counts.len() >= self.capacity {
            counts.retain(|_, count| count.window_end > now);
            if counts.len() >= self.capacity {
                // Still full: let go of the window that would close first.
                let soonest = counts
                    .iter()
                    .min_by_key(|(_, count)| count.window_end)
                    .map(|(key, _)| key.clone());
                if let Some(soonest) = soonest {
                    counts.remove(&soonest);
                }
            }
        }
        let count = counts.entry(key.to_owned()).or_insert(AttemptCount {
            failures: 0,
            window_end: now.saturating_add(window),
        });
        if count.window_end <= now {
            *count = AttemptCount {
                failures: 0,
                window_end: now.saturating_add(window),
            };
        }
        count.failures = count.failures.saturating_add(1);
        Ok(*count)
    }

    async fn reset(&self, key: &str) -> Result<()> {
        self.counts().remove(key);
        Ok(())
    }
}

#[cfg(feature = "redis")]
mod redis_attempts {
    use super::*;
    use redis::aio::ConnectionManager;

    /// Failure counts in Redis (feature `redis`): `INCR` and `EXPIRE ... NX` in one
    /// transaction, so the window opens at the first failure and every server shares it.
    #[derive(Clone)]
    pub struct RedisAttemptStore {
        connection: ConnectionManager,
        prefix: String,
    }

    impl std::fmt::Debug for RedisAttemptStore {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("RedisAttemptStore")
                .field("prefix", &self.prefix)
                .finish_non_exhaustive()
        }
    }

    use crate::redis_store::{connect_redis, unavailable};

    impl RedisAttemptStore {
        /// Connects to the Redis at `url`; keys start with `prefix`. Windows follow the
        /// Redis server's clock (key expiry), not the `now` passed in.
        pub async fn connect(url: &str, prefix: &str) -> Result<Self> {
            let connection = connect_redis(url).await?;
            Ok(Self {
                connection,
                prefix: prefix.to_owned(),
            })
        }
    }

    impl AttemptStore for RedisAttemptStore {
        async fn get(&self, key: &str, now: u64) -> Result<Option<AttemptCount>> {
            let mut connection = self.connection.clone();
            let (failures, ttl): (Option<u32>, i64) = redis::pipe()
                .get(format!("{}{key}", self.prefix))
                .ttl(format!("{}{key}", self.prefix))
                .query_async(&mut connection)
                .await
                .map_err(unavailable)?;
            Ok(failures.map(|failures| AttemptCount {
                failures,
                window_end: now.saturating_add(u64::try_from(ttl).unwrap_or(0)),
            }))
        }

        async fn increment(&self, key: &str, window: u64, now: u64) -> Result<AttemptCount> {
            let mut connection = self.connection.clone();
            let key = format!("{}{key}", self.prefix);
            let (failures, _, ttl): (u32, i64, i64) = redis::pipe()
                .atomic()
                .incr(&key, 1)
                .cmd("EXPIRE")
                .arg(&key)
                .arg(window)
                .arg("NX")
                .ttl(&key)
                .query_async(&mut connection)
                .await
                .map_err(unavailable)?;
            Ok(AttemptCount {
                failures,
                window_end: now.saturating_add(u64::try_from(ttl).unwrap_or(0)),
            })
        }

        async fn reset(&self, key: &str) -> Result<()> {
            let mut connection = self.connection.clone();
            let _: i64 = redis::cmd("DEL")
                .arg(format!("{}{key}", self.prefix))
                .query_async(&mut connection)
                .await
                .map_err(unavailable)?;
            Ok(())
        }
    }
}

#[cfg(feature = "redis")]
pub use redis_attempts::RedisAttemptStore;

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    const ADDR: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));

    #[tokio::test]
    async fn account_lockout_window_and_reset() {
        let throttle = LoginThrottle::new(MemoryAttemptStore::new(), ThrottlePolicy::default());
        for _ in 0..5 {
            throttle.check("Alice", ADDR, at(1000)).await.unwrap();
            throttle
                .record_failure("Alice", ADDR, at(1000))
                .await
                .unwrap();
        }
        match throttle.check("alice", ADDR, at(1100)).await {
            Err(Error::Throttled { retry_after }) => {
                assert_eq!(retry_after, Duration::from_secs(800))
            }
            other => panic!("{other:?}"),
        }
        // Another account from the same address is still allowed.
        throttle.check("bob", ADDR, at(1100)).await.unwrap();
        // The window ends.
        throttle.check("alice", ADDR, at(1900)).await.unwrap();
        // A success clears the account.
        for _ in 0..5 {
            throttle
                .record_failure("carol", ADDR, at(2000))
                .await
                .unwrap();
        }
        assert!(throttle.check("carol", ADDR, at(2000)).await.is_err());
        throttle.record_success("carol").await.unwrap();
        throttle.check("carol", ADDR, at(2000)).await.unwrap();
    }

    #[tokio::test]
    async fn one_address_guessing_many_accounts_is_limited() {
        let throttle = LoginThrottle::new(MemoryAttemptStore::new(), ThrottlePolicy::default());
        for n in 0..20 {
            let account = format!("user{n}");
            throttle.check(&account, ADDR, at(0)).await.unwrap();
            throttle
                .record_failure(&account, ADDR, at(0))
                .await
                .unwrap();
            throttle.record_success(&account).await.unwrap();
        }
        assert!(matches!(
            throttle.check("someone-new", ADDR, at(0)).await,
            Err(Error::Throttled { .. })
        ));
        let other = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));
        throttle.check("someone-new", other, at(0)).await.unwrap();
    }

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        let a = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 3, 4, 5, 6));
        let b = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 9, 9, 9, 9));
        let c = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 3, 3, 4, 5, 6));
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
    }

    #[tokio::test]
    async fn memory_store_is_bounded() {
        let store = MemoryAttemptStore::with_capacity(3);
        for n in 0..10u64 {
            store.increment(&format!("k{n}"), 100, n).await.unwrap();
        }
        assert_eq!(store.counts().len(), 3);
        // The newest windows were kept.
        assert!(store.get("k9", 10).await.unwrap().is_some());
        assert!(store.get("k0", 10).await.unwrap().is_none());
    }
}
