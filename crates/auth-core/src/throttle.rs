//! Login throttling per account and per client address.
//!
//! Failed logins are counted in fixed windows, per account *from one client address* and per
//! client address across accounts (so a visitor guessing at an account from their address
//! cannot lock its owner out everywhere, and one address guessing at many accounts is
//! still limited, as OWASP's Authentication Cheat Sheet advises). Each
//! login attempt first *reserves* a failure, atomically in the store, before the password is
//! checked: when the account or the address is at its limit the reservation is refused with
//! [`Error::Throttled`] (429, with the time until the window ends), so a locked account costs
//! no hashing, and concurrent guesses cannot all pass a check made before any of them is
//! counted. A successful login gives the reservation back: the account's count is cleared,
//! the address's reservation refunded (one address guessing many accounts stays limited).
//!
//! This is not general rate limiting, which is why it does not use `governor`: only failures
//! count, a success resets, and the store is a trait so that several servers can share the
//! counts in Redis (feature `redis`).
//!
//! Client addresses are counted as given, except that IPv4-mapped IPv6 addresses
//! (`::ffff:192.0.2.1`, what a dual-stack listener reports for IPv4 clients) are counted as
//! their IPv4 address, and other IPv6 addresses per /64. Behind a reverse proxy, pass the
//! client address the proxy reports (proxy-core's `client_address` for a trusted proxy),
//! not the proxy's own: every client would otherwise share one count.
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
//!     let attempt = throttle.reserve("alice", addr, now).await?;
//!     // ... the password was wrong: keep the reservation as the failure.
//!     attempt.failed();
//! }
//! assert!(matches!(throttle.reserve("alice", addr, now).await, Err(Error::Throttled { .. })));
//! # Ok(())
//! # }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run()).unwrap();
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{Error, Result, Verification};

/// Limits for [`LoginThrottle`].
#[derive(Debug, Clone)]
pub struct ThrottlePolicy {
    /// Failures allowed per account from one client address in a window (default 5).
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

/// The outcome of [`AttemptStore::reserve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// The failure was counted; the count includes it.
    Reserved(AttemptCount),
    /// The key is at its limit; nothing was counted.
    Refused(AttemptCount),
}

/// Where failure counts live.
///
/// [`reserve`](Self::reserve) must be atomic: concurrent calls on one key never count past
/// the limit.
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
    /// Atomically: refuses when `key` has `limit` failures or more in an open window,
    /// otherwise adds one (opening a window of `window` seconds if none is open).
    fn reserve(
        &self,
        key: &str,
        limit: u32,
        window: u64,
        now: u64,
    ) -> impl Future<Output = Result<Reservation>> + Send;
    /// Gives back one reserved failure under `key` (no effect on a closed window or zero).
    fn release(&self, key: &str, now: u64) -> impl Future<Output = Result<()>> + Send;
}

/// A failure reserved by [`LoginThrottle::reserve`] before checking a password. Settle it
/// with [`LoginThrottle::succeeded`] (right password), [`LoginThrottle::release`] (the
/// password could not be checked, e.g. hashing was busy) or [`Attempt::failed`] (wrong
/// password: the reservation stays as the failure). Dropping it counts as a failure too,
/// so an attempt abandoned mid-check still counts.
#[derive(Debug)]
#[must_use = "settle the attempt: succeeded, release or failed"]
pub struct Attempt {
    account: String,
    address: String,
}

impl Attempt {
    /// The password was wrong: the reserved failure stays counted.
    pub fn failed(self) {}
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

/// An account's failures are counted per client address: a visitor guessing from one
/// address cannot lock the owner, at another address, out of their account (OWASP's
/// Authentication Cheat Sheet warns that a lockout per account alone is a denial of service
/// anyone can inflict). Guessing many accounts from one address is still limited by the
/// address's own count.
fn account_key(account: &str, address: &str) -> String {
    // Accounts are compared case-insensitively so that "Alice" and "alice" share a count.
    format!("a:{}|{address}", account.to_lowercase())
}

fn address_key(address: IpAddr) -> String {
    // A dual-stack listener reports IPv4 clients as `::ffff:a.b.c.d`: without unmapping, the
    // /64 grouping below puts every IPv4 client in one count.
    match address.to_canonical() {
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

    /// Reserves one failure for `account` and for `address`, atomically in the store, or
    /// refuses with [`Error::Throttled`] when either is at its limit (nothing stays
    /// reserved then). Call it before checking the password.
    pub async fn reserve(
        &self,
        account: &str,
        address: IpAddr,
        now: SystemTime,
    ) -> Result<Attempt> {
        let now = unix(now);
        let window = self.policy.window.as_secs().max(1);
        let throttled = |count: AttemptCount| Error::Throttled {
            retry_after: Duration::from_secs(count.window_end.saturating_sub(now).max(1)),
        };
        let address = address_key(address);
        let account = account_key(account, &address);
        if let Reservation::Refused(count) = self
            .store
            .reserve(&account, self.policy.max_account_failures, window, now)
            .await?
        {
            return Err(throttled(count));
        }
        match self
            .store
            .reserve(&address, self.policy.max_address_failures, window, now)
            .await
        {
            Ok(Reservation::Reserved(_)) => Ok(Attempt { account, address }),
            Ok(Reservation::Refused(count)) => {
                self.store.release(&account, now).await?;
                Err(throttled(count))
            }
            Err(error) => {
                let _ = self.store.release(&account, now).await;
                Err(error)
            }
        }
    }

    /// One whole login attempt: reserves a failure ([`LoginThrottle::reserve`]), then runs
    /// `check` (the password verification) and settles the reservation by its outcome: a
    /// match [`succeeded`](Self::succeeded), a mismatch stays counted as the failure, an
    /// error (the password was not checked: hashing busy, a store failure)
    /// [`release`](Self::release)s both. Refused with [`Error::Throttled`] before `check`
    /// runs when the account or the address is at its limit.
    ///
    /// A failure to settle after a match is not reported: the login stands, and at worst
    /// one failure stays counted.
    ///
    /// ```
    /// use std::net::{IpAddr, Ipv4Addr};
    /// use std::time::{Duration, UNIX_EPOCH};
    /// use auth_core::{Error, LoginThrottle, MemoryAttemptStore, Passwords, ThrottlePolicy, Verification};
    ///
    /// # async fn run() -> auth_core::Result<()> {
    /// let passwords = Passwords::new(64, 1, 1)?;
    /// let stored = passwords.hash("correct horse")?;
    /// let policy = ThrottlePolicy { max_account_failures: 1, ..ThrottlePolicy::default() };
    /// let throttle = LoginThrottle::new(MemoryAttemptStore::new(), policy);
    /// let addr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    /// let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    /// // Run `verify_user` on a blocking thread in a real server: argon2 takes a while.
    /// let right = throttle
    ///     .attempt("bob", addr, now, || async { passwords.verify_user("correct horse", Some(&stored)) })
    ///     .await?;
    /// assert!(right.is_match());
    /// let wrong = throttle
    ///     .attempt("bob", addr, now, || async { passwords.verify_user("guess", Some(&stored)) })
    ///     .await?;
    /// assert!(!wrong.is_match());
    /// let locked = throttle
    ///     .attempt("bob", addr, now, || async { passwords.verify_user("correct horse", Some(&stored)) })
    ///     .await;
    /// assert!(matches!(locked, Err(Error::Throttled { .. })));
    /// # Ok(())
    /// # }
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run()).unwrap();
    /// ```
    pub async fn attempt<F, Fut>(
        &self,
        account: &str,
        address: IpAddr,
        now: SystemTime,
        check: F,
    ) -> Result<Verification>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Verification>>,
    {
        let attempt = self.reserve(account, address, now).await?;
        match check().await {
            Ok(Verification::Match { needs_rehash }) => {
                let _ = self.succeeded(attempt, now).await;
                Ok(Verification::Match { needs_rehash })
            }
            Ok(Verification::Mismatch) => {
                attempt.failed();
                Ok(Verification::Mismatch)
            }
            Err(error) => {
                let _ = self.release(attempt, now).await;
                Err(error)
            }
        }
    }

    /// The password was right: the account's failures are forgotten and the address's
    /// reservation is given back (its earlier failures stay).
    pub async fn succeeded(&self, attempt: Attempt, now: SystemTime) -> Result<()> {
        self.store.reset(&attempt.account).await?;
        self.store.release(&attempt.address, unix(now)).await
    }

    /// The password was not checked (hashing busy, a store error): both reservations are
    /// given back.
    pub async fn release(&self, attempt: Attempt, now: SystemTime) -> Result<()> {
        let now = unix(now);
        self.store.release(&attempt.account, now).await?;
        self.store.release(&attempt.address, now).await
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
        match self.bump(key, None, window, now) {
            Reservation::Reserved(count) | Reservation::Refused(count) => Ok(count),
        }
    }

    async fn reset(&self, key: &str) -> Result<()> {
        self.counts().remove(key);
        Ok(())
    }

    async fn reserve(&self, key: &str, limit: u32, window: u64, now: u64) -> Result<Reservation> {
        Ok(self.bump(key, Some(limit), window, now))
    }

    async fn release(&self, key: &str, now: u64) -> Result<()> {
        let mut counts = self.counts();
        if let Some(count) = counts.get_mut(key)
            && count.window_end > now
        {
            count.failures = count.failures.saturating_sub(1);
            if count.failures == 0 {
                counts.remove(key);
            }
        }
        Ok(())
    }
}

impl MemoryAttemptStore {
    /// Adds one failure under `key` unless it is at `limit`, under one lock.
    fn bump(&self, key: &str, limit: Option<u32>, window: u64, now: u64) -> Reservation {
        let mut counts = self.counts();
        if let Some(limit) = limit
            && let Some(count) = counts.get(key)
            && count.window_end > now
            && count.failures >= limit
        {
            return Reservation::Refused(*count);
        }
        if limit == Some(0) {
            return Reservation::Refused(AttemptCount {
                failures: 0,
                window_end: now.saturating_add(window),
            });
        }
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
        Reservation::Reserved(*count)
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

    use crate::redis_store::{Rerun, connect_redis, retry_once, unavailable};

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
            let pipeline = redis::pipe()
                .get(format!("{}{key}", self.prefix))
                .ttl(format!("{}{key}", self.prefix))
                .clone();
            let (failures, ttl): (Option<u32>, i64) = retry_once(Rerun::Safe, || {
                let mut connection = self.connection.clone();
                let pipeline = &pipeline;
                async move { pipeline.query_async(&mut connection).await }
            })
            .await
            .map_err(unavailable)?;
            Ok(failures.map(|failures| AttemptCount {
                failures,
                window_end: now.saturating_add(u64::try_from(ttl).unwrap_or(0)),
            }))
        }

        async fn increment(&self, key: &str, window: u64, now: u64) -> Result<AttemptCount> {
            let key = format!("{}{key}", self.prefix);
            let pipeline = redis::pipe()
                .atomic()
                .incr(&key, 1)
                .cmd("EXPIRE")
                .arg(&key)
                .arg(window)
                .arg("NX")
                .ttl(&key)
                .clone();
            // Repeated after a dropped connection, a failure may count twice: stricter, not
            // laxer, so it is safe to repeat.
            let (failures, _, ttl): (u32, i64, i64) = retry_once(Rerun::Safe, || {
                let mut connection = self.connection.clone();
                let pipeline = &pipeline;
                async move { pipeline.query_async(&mut connection).await }
            })
            .await
            .map_err(unavailable)?;
            Ok(AttemptCount {
                failures,
                window_end: now.saturating_add(u64::try_from(ttl).unwrap_or(0)),
            })
        }

        async fn reset(&self, key: &str) -> Result<()> {
            let command = redis::cmd("DEL")
                .arg(format!("{}{key}", self.prefix))
                .clone();
            let _: i64 = retry_once(Rerun::Safe, || {
                let mut connection = self.connection.clone();
                let command = &command;
                async move { command.query_async(&mut connection).await }
            })
            .await
            .map_err(unavailable)?;
            Ok(())
        }

        async fn reserve(
            &self,
            key: &str,
            limit: u32,
            window: u64,
            now: u64,
        ) -> Result<Reservation> {
            let script = redis::Script::new(RESERVE);
            let mut invocation = script.key(format!("{}{key}", self.prefix));
            invocation.arg(limit).arg(window);
            // Repeated after a dropped connection, an attempt may be counted twice (and the
            // repeat refused at the limit): stricter, not laxer, so it is safe to repeat.
            let (reserved, failures, ttl): (i64, u32, i64) = retry_once(Rerun::Safe, || {
                let mut connection = self.connection.clone();
                let invocation = &invocation;
                async move { invocation.invoke_async(&mut connection).await }
            })
            .await
            .map_err(unavailable)?;
            let count = AttemptCount {
                failures,
                window_end: now.saturating_add(u64::try_from(ttl).unwrap_or(0)),
            };
            Ok(if reserved == 1 {
                Reservation::Reserved(count)
            } else {
                Reservation::Refused(count)
            })
        }

        async fn release(&self, key: &str, _now: u64) -> Result<()> {
            let script = redis::Script::new(RELEASE);
            let invocation = script.key(format!("{}{key}", self.prefix));
            // Giving a failure back twice would hand a guesser an extra try: repeated only
            // when the first attempt cannot have reached Redis.
            let _: i64 = retry_once(Rerun::IfUnsent, || {
                let mut connection = self.connection.clone();
                let invocation = &invocation;
                async move { invocation.invoke_async(&mut connection).await }
            })
            .await
            .map_err(unavailable)?;
            Ok(())
        }
    }

    /// Check and count in one script, which Redis runs without interleaving other commands.
    /// Returns `{reserved (0/1), failures, ttl}`.
    const RESERVE: &str = r"
local failures = tonumber(redis.call('GET', KEYS[1]) or '0')
if failures >= tonumber(ARGV[1]) then
  return {0, failures, redis.call('TTL', KEYS[1])}
end
failures = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2], 'NX')
return {1, failures, redis.call('TTL', KEYS[1])}
";

    /// Gives one failure back; the key goes when it reaches zero.
    const RELEASE: &str = r"
local failures = tonumber(redis.call('GET', KEYS[1]) or '0')
if failures > 1 then
  return redis.call('DECR', KEYS[1])
end
redis.call('DEL', KEYS[1])
return 0
";
}

#[cfg(feature = "redis")]
pub use redis_attempts::RedisAttemptStore;

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::sync::Arc;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    const ADDR: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));

    async fn fail(throttle: &LoginThrottle<MemoryAttemptStore>, account: &str, time: u64) {
        throttle
            .reserve(account, ADDR, at(time))
            .await
            .unwrap()
            .failed();
    }

    #[tokio::test]
    async fn account_lockout_window_and_reset() {
        let throttle = LoginThrottle::new(MemoryAttemptStore::new(), ThrottlePolicy::default());
        for _ in 0..5 {
            fail(&throttle, "Alice", 1000).await;
        }
        match throttle.reserve("alice", ADDR, at(1100)).await {
            Err(Error::Throttled { retry_after }) => {
                assert_eq!(retry_after, Duration::from_secs(800))
            }
            other => panic!("{other:?}"),
        }
        // Another account from the same address is still allowed.
        let bob = throttle.reserve("bob", ADDR, at(1100)).await.unwrap();
        throttle.release(bob, at(1100)).await.unwrap();
        // The window ends.
        let alice = throttle.reserve("alice", ADDR, at(1900)).await.unwrap();
        throttle.release(alice, at(1900)).await.unwrap();
        // A success clears the account.
        for _ in 0..4 {
            fail(&throttle, "carol", 2000).await;
        }
        let last = throttle.reserve("carol", ADDR, at(2000)).await.unwrap();
        assert!(throttle.reserve("carol", ADDR, at(2000)).await.is_err());
        throttle.succeeded(last, at(2000)).await.unwrap();
        let again = throttle.reserve("carol", ADDR, at(2000)).await.unwrap();
        throttle.succeeded(again, at(2000)).await.unwrap();
    }

    #[tokio::test]
    async fn attempt_settles_by_the_outcome_of_the_check() {
        let policy = ThrottlePolicy {
            max_account_failures: 2,
            ..ThrottlePolicy::default()
        };
        let throttle = LoginThrottle::new(MemoryAttemptStore::new(), policy);
        let key = account_key("dan", &address_key(ADDR));
        let account = || throttle.store.counts().get(&key).copied();
        let busy = || async {
            Err(Error::HashingBusy {
                retry_after: Duration::from_secs(1),
            })
        };
        let mismatch = || async { Ok(Verification::Mismatch) };
        let matched = || async {
            Ok(Verification::Match {
                needs_rehash: false,
            })
        };
        // Not checked: nothing stays counted.
        for _ in 0..5 {
            let result = throttle.attempt("dan", ADDR, at(0), busy).await;
            assert!(matches!(result, Err(Error::HashingBusy { .. })));
        }
        assert_eq!(account().map_or(0, |count| count.failures), 0);
        // A mismatch counts; a match clears the account.
        let wrong = throttle.attempt("dan", ADDR, at(0), mismatch).await;
        assert_eq!(wrong.unwrap(), Verification::Mismatch);
        assert_eq!(account().map(|count| count.failures), Some(1));
        assert!(
            throttle
                .attempt("dan", ADDR, at(0), matched)
                .await
                .unwrap()
                .is_match()
        );
        assert_eq!(account(), None);
        // At the limit the check does not even run.
        for _ in 0..2 {
            let _ = throttle
                .attempt("dan", ADDR, at(0), mismatch)
                .await
                .unwrap();
        }
        let ran = std::sync::atomic::AtomicBool::new(false);
        let refused = throttle
            .attempt("dan", ADDR, at(0), || async {
                ran.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok(Verification::Mismatch)
            })
            .await;
        assert!(matches!(refused, Err(Error::Throttled { .. })));
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
    }

    /// Issue 22, item 7: five wrong passwords from anywhere locked the account for everyone.
    /// Now the count is per (account, address): the attacker's address is refused, the
    /// owner's is not.
    #[tokio::test]
    async fn guessing_from_one_address_does_not_lock_the_owner_out() {
        let throttle = LoginThrottle::new(MemoryAttemptStore::new(), ThrottlePolicy::default());
        let attacker = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9));
        for _ in 0..5 {
            throttle
                .reserve("alice", attacker, at(0))
                .await
                .unwrap()
                .failed();
        }
        assert!(matches!(
            throttle.reserve("alice", attacker, at(10)).await,
            Err(Error::Throttled { .. })
        ));
        let owner = throttle.reserve("Alice", ADDR, at(10)).await.unwrap();
        throttle.succeeded(owner, at(10)).await.unwrap();
        // The owner's success does not clear the attacker's count.
        assert!(throttle.reserve("alice", attacker, at(20)).await.is_err());
    }

    #[tokio::test]
    async fn one_address_guessing_many_accounts_is_limited() {
        let throttle = LoginThrottle::new(MemoryAttemptStore::new(), ThrottlePolicy::default());
        for n in 0..20 {
            fail(&throttle, &format!("user{n}"), 0).await;
        }
        assert!(matches!(
            throttle.reserve("someone-new", ADDR, at(0)).await,
            Err(Error::Throttled { .. })
        ));
        // The refused address did not leave a reservation on the account.
        assert_eq!(
            throttle
                .store
                .get(&account_key("someone-new", &address_key(ADDR)), 0)
                .await
                .unwrap(),
            None
        );
        let other = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));
        let attempt = throttle.reserve("someone-new", other, at(0)).await.unwrap();
        // Successes refund the address's reservation, not its earlier failures.
        throttle.succeeded(attempt, at(0)).await.unwrap();
        assert_eq!(
            throttle.store.get(&address_key(other), 0).await.unwrap(),
            None
        );
    }

    /// Issue 14, finding 5: 30 concurrent wrong guesses with a limit of 5 were all checked,
    /// because the check and the count were separate steps with the hash in between. Now each
    /// guess reserves its failure atomically before the (slow) check: exactly 5 get through.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_guesses_cannot_pass_the_limit() {
        let throttle = Arc::new(LoginThrottle::new(
            MemoryAttemptStore::new(),
            ThrottlePolicy::default(),
        ));
        let barrier = Arc::new(tokio::sync::Barrier::new(30));
        let tasks: Vec<_> = (0..30)
            .map(|_| {
                let throttle = throttle.clone();
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    let attempt = throttle.reserve("alice", ADDR, at(0)).await.ok()?;
                    // The password check runs here, with other guesses in flight.
                    tokio::task::yield_now().await;
                    attempt.failed();
                    Some(())
                })
            })
            .collect();
        let mut checked = 0;
        for task in tasks {
            if task.await.unwrap().is_some() {
                checked += 1;
            }
        }
        assert_eq!(checked, 5);
    }

    /// Issue 14, finding 6: a dual-stack listener reports IPv4 clients as `::ffff:a.b.c.d`,
    /// which the /64 grouping put in one bucket: 20 failures locked out every IPv4 user.
    #[test]
    fn ipv4_mapped_addresses_are_counted_as_ipv4() {
        let mapped = |a, b, c, d| IpAddr::V6(Ipv4Addr::new(a, b, c, d).to_ipv6_mapped());
        assert_ne!(
            address_key(mapped(192, 0, 2, 1)),
            address_key(mapped(198, 51, 100, 2))
        );
        assert_eq!(
            address_key(mapped(192, 0, 2, 1)),
            address_key(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)))
        );
    }

    #[tokio::test]
    async fn one_mapped_ipv4_client_does_not_lock_out_another() {
        let throttle = LoginThrottle::new(MemoryAttemptStore::new(), ThrottlePolicy::default());
        let attacker = IpAddr::V6(Ipv4Addr::new(203, 0, 113, 9).to_ipv6_mapped());
        let victim = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 44).to_ipv6_mapped());
        for n in 0..20 {
            throttle
                .reserve(&format!("guess{n}"), attacker, at(0))
                .await
                .unwrap()
                .failed();
        }
        assert!(throttle.reserve("x", attacker, at(0)).await.is_err());
        throttle.reserve("x", victim, at(0)).await.unwrap().failed();
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
