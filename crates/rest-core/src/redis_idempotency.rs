//! An [`IdempotencyStore`] in Redis (feature `redis`), shared by every instance behind one
//! load balancer: a retry that lands on another instance replays the stored response.
//!
//! Layout: one string per key, `{prefix}idem:{key}`. While the first request runs it holds
//! `P` + the request's fingerprint + the claiming attempt's token and expires after the
//! *lease* (default 60 s), so an instance that dies mid-request blocks the key only that
//! long; once completed it holds
//! `D` + the fingerprint + the [encoded](StoredResponse::encode) response and expires after
//! the store's time to live. Expiry follows the Redis server's clock, not the `now` passed
//! in.
//!
//! Every step is one Lua script, which Redis runs without interleaving other commands: the
//! claim (read, or write if absent) so that of two instances racing on one key exactly one
//! runs the request, and completion and abandonment, which act only on a reservation that is
//! still pending with the same fingerprint.
//!
//! A request that runs longer than the lease can be run twice (the reservation is gone when
//! the retry arrives): set the lease above your longest request timeout.
//!
//! A command that fails because the connection dropped or was refused runs once more (the
//! first command after a Redis restart fails so while the connection is re-made); each
//! step is safe to repeat, the claim because its reservation carries the attempt's token.
//!
//! Failures (connection refused, timeouts, errors) are
//! [`Error::IdempotencyStoreUnavailable`] (503): a request that cannot be checked is not run.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::idempotency::{Fingerprint, IdempotencyKey, IdempotencyStore, Reservation};
use crate::{Error, Result, StoredResponse};

/// The claim: the stored value, or nothing after storing the reservation. The reservation
/// (`ARGV[1]`) ends with the attempt's own token, so that a claim repeated after a dropped
/// connection recognises the reservation its first attempt made.
const BEGIN: &str = r"
local value = redis.call('GET', KEYS[1])
if value == ARGV[1] then
  return false
end
if value then
  return value
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
";

/// Completion: only the same request's pending reservation (`P` + fingerprint, whatever the
/// attempt token after them) becomes the response.
const COMPLETE: &str = r"
local value = redis.call('GET', KEYS[1])
if not value or string.sub(value, 1, 33) ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
";

/// Abandonment: only the same request's pending reservation is removed.
const ABANDON: &str = r"
local value = redis.call('GET', KEYS[1])
if not value or string.sub(value, 1, 33) ~= ARGV[1] then
  return 0
end
return redis.call('DEL', KEYS[1])
";

/// The default lease of a reservation.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// Idempotency keys in Redis. Cloning is cheap and shares the connection.
#[derive(Clone)]
pub struct RedisIdempotencyStore {
    connection: ConnectionManager,
    prefix: Arc<str>,
    ttl: Duration,
    lease: Duration,
    begin: Arc<redis::Script>,
    complete: Arc<redis::Script>,
    abandon: Arc<redis::Script>,
}

impl std::fmt::Debug for RedisIdempotencyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisIdempotencyStore")
            .field("prefix", &self.prefix)
            .field("ttl", &self.ttl)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

fn unavailable(error: redis::RedisError) -> Error {
    Error::IdempotencyStoreUnavailable(error.to_string())
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

impl RedisIdempotencyStore {
    /// Connects to the Redis at `url` (`redis://host:port/db`); keys start with `prefix`
    /// (for example `"myapp:"`) and completed ones are kept for `ttl`. Commands time out
    /// after 2 seconds, so an unresponsive server is a 503 rather than a hung request.
    ///
    /// # Errors
    ///
    /// [`Error::IdempotencyStoreUnavailable`] when the URL is invalid or nothing answers.
    pub async fn connect(url: &str, prefix: &str, ttl: Duration) -> Result<Self> {
        let client = redis::Client::open(url).map_err(unavailable)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1);
        let connection = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(unavailable)?;
        Ok(Self::new(connection, prefix, ttl))
    }

    /// A store over a connection the application already has.
    #[must_use]
    pub fn new(connection: ConnectionManager, prefix: &str, ttl: Duration) -> Self {
        Self {
            connection,
            prefix: Arc::from(prefix),
            ttl,
            lease: DEFAULT_LEASE.min(ttl),
            begin: Arc::new(redis::Script::new(BEGIN)),
            complete: Arc::new(redis::Script::new(COMPLETE)),
            abandon: Arc::new(redis::Script::new(ABANDON)),
        }
    }

    /// How long a reservation holds the key while its request runs (default 60 s, at most
    /// the time to live).
    #[must_use]
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    fn key(&self, key: &IdempotencyKey) -> String {
        format!("{}idem:{}", self.prefix, key.as_str())
    }
}

fn pending(fingerprint: &Fingerprint) -> Vec<u8> {
    let mut value = Vec::with_capacity(33);
    value.push(b'P');
    value.extend_from_slice(fingerprint.as_bytes());
    value
}

/// 16 bytes that tell one claim attempt from every other: a random 64-bit process key and a
/// counter, hashed. They need to be unique, not secret.
fn attempt_token() -> [u8; 16] {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    // std's hasher keys are random per `RandomState`.
    let mut first = std::collections::hash_map::RandomState::new().build_hasher();
    first.write_u64(count);
    let mut token = [0u8; 16];
    token[..8].copy_from_slice(&first.finish().to_be_bytes());
    token[8..].copy_from_slice(&count.to_be_bytes());
    token
}

/// Whether a command may run once more after `error`: the connection dropped or was
/// refused (the first command after a Redis restart fails so, and the connection manager
/// reconnects on it). Never a timeout (the command may still be running) nor an error Redis
/// answered. Every command here is safe to repeat: completion and abandonment act only on
/// a pending reservation, and a repeated claim recognises its own reservation by its token.
fn connection_dropped(error: &redis::RedisError) -> bool {
    error.is_connection_refusal() || error.is_connection_dropped()
}

/// Runs `command`, and once more when the connection dropped.
async fn retry_once<T, F, Fut>(mut command: F) -> redis::RedisResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = redis::RedisResult<T>>,
{
    match command().await {
        Err(error) if connection_dropped(&error) => command().await,
        result => result,
    }
}

impl IdempotencyStore for RedisIdempotencyStore {
    async fn begin(
        &self,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        _now: SystemTime,
    ) -> Result<Reservation> {
        let mut reservation = pending(fingerprint);
        reservation.extend_from_slice(&attempt_token());
        let mut invocation = self.begin.key(self.key(key));
        invocation.arg(reservation).arg(millis(self.lease));
        let stored: Option<Vec<u8>> = retry_once(|| {
            let mut connection = self.connection.clone();
            let invocation = &invocation;
            async move { invocation.invoke_async(&mut connection).await }
        })
        .await
        .map_err(unavailable)?;
        let Some(stored) = stored else {
            return Ok(Reservation::Started);
        };
        let corrupt = || Error::IdempotencyStoreUnavailable("a stored entry is corrupt".into());
        let (state, rest) = stored.split_first().ok_or_else(corrupt)?;
        let (print, response) = rest.split_at_checked(32).ok_or_else(corrupt)?;
        if print != fingerprint.as_bytes() {
            return Err(Error::IdempotencyKeyReused);
        }
        match state {
            b'P' => Err(Error::IdempotencyKeyInProgress),
            b'D' => StoredResponse::decode(response)
                .map(Reservation::Replay)
                .ok_or_else(corrupt),
            _ => Err(corrupt()),
        }
    }

    async fn complete(
        &self,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        response: StoredResponse,
        _now: SystemTime,
    ) -> Result<()> {
        let encoded = response.encode();
        let mut done = Vec::with_capacity(33 + encoded.len());
        done.push(b'D');
        done.extend_from_slice(fingerprint.as_bytes());
        done.extend_from_slice(&encoded);
        let mut invocation = self.complete.key(self.key(key));
        invocation
            .arg(pending(fingerprint))
            .arg(done)
            .arg(millis(self.ttl));
        let _stored: i64 = retry_once(|| {
            let mut connection = self.connection.clone();
            let invocation = &invocation;
            async move { invocation.invoke_async(&mut connection).await }
        })
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn abandon(&self, key: &IdempotencyKey, fingerprint: &Fingerprint) -> Result<()> {
        let mut invocation = self.abandon.key(self.key(key));
        invocation.arg(pending(fingerprint));
        let _removed: i64 = retry_once(|| {
            let mut connection = self.connection.clone();
            let invocation = &invocation;
            async move { invocation.invoke_async(&mut connection).await }
        })
        .await
        .map_err(unavailable)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempt_tokens_differ() {
        let tokens: std::collections::HashSet<[u8; 16]> =
            (0..1000).map(|_| attempt_token()).collect();
        assert_eq!(tokens.len(), 1000);
    }

    #[test]
    fn only_connection_failures_are_retried() {
        let refused =
            redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let closed = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        let timed_out = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        let script = redis::RedisError::from((redis::ErrorKind::Client, "a script error"));
        assert!(connection_dropped(&refused));
        assert!(connection_dropped(&closed));
        assert!(!connection_dropped(&timed_out));
        assert!(!connection_dropped(&script));
    }
}
