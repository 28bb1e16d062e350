//! GCRA rate limits kept in Redis, so several proxies share one budget per key.
//!
//! One Lua script does the read-decide-write atomically with the server's clock (`TIME`), so
//! proxies with skewed clocks still agree. The script applies the same rule as
//! [`Gcra::decide`] in microseconds and returns the previous TAT and the server's time; the
//! [`Decision`] (remaining burst, reset, retry-after) is then computed by `Gcra::decide`
//! itself, so memory and Redis limits answer identically.
//!
//! A check whose connection dropped (the first one after a Redis restart) runs once more:
//! if the first attempt did reach Redis, the request is charged twice, which errs on the
//! strict side.

use redis::aio::ConnectionManager;

use crate::ratelimit::{Decision, Gcra};

const SCRIPT: &str = r"
local emission = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local stored = redis.call('GET', KEYS[1])
local tat = now
if stored then tat = math.max(tonumber(stored), now) end
local new_tat = tat + emission
if new_tat - emission - tolerance > now then
  return {0, tostring(tat), tostring(now)}
end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.floor((new_tat - now) / 1000) + 1)
return {1, tostring(tat), tostring(now)}
";

/// A keyed GCRA limiter in Redis.
#[derive(Clone)]
pub struct RedisLimiter {
    connection: ConnectionManager,
    gcra: Gcra,
    prefix: String,
    script: redis::Script,
}

impl std::fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("gcra", &self.gcra)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisLimiter {
    /// A limiter storing keys as `prefix` + key.
    #[must_use]
    pub fn new(connection: ConnectionManager, gcra: Gcra, prefix: impl Into<String>) -> Self {
        Self {
            connection,
            gcra,
            prefix: prefix.into(),
            script: redis::Script::new(SCRIPT),
        }
    }

    /// Checks and records one request for `key`.
    ///
    /// # Errors
    /// The Redis error when the server cannot be reached or the script fails; the caller
    /// decides whether to fail open or closed.
    pub async fn check(&self, key: &str) -> Result<Decision, redis::RedisError> {
        let mut invocation = self.script.key(format!("{}{key}", self.prefix));
        invocation
            .arg(self.gcra.emission_ns / 1000)
            .arg(self.gcra.tolerance_ns / 1000);
        let attempt = || {
            let mut connection = self.connection.clone();
            let invocation = &invocation;
            async move {
                invocation
                    .invoke_async::<(i64, String, String)>(&mut connection)
                    .await
            }
        };
        // Once more when the connection dropped or was refused (the first command after a
        // Redis restart fails so while the connection is re-made). A repeat of a check that
        // did reach Redis charges the request twice: stricter, never laxer.
        let (allowed, tat, now) = match attempt().await {
            Err(error) if error.is_connection_refusal() || error.is_connection_dropped() => {
                attempt().await?
            }
            result => result?,
        };
        let micros = |s: &str| s.parse::<f64>().map_or(0, |v| v as u64);
        let (tat, now) = (
            micros(&tat).saturating_mul(1000),
            micros(&now).saturating_mul(1000),
        );
        // Microsecond granularity in Redis: recompute the decision with the same rule.
        let gcra = Gcra {
            emission_ns: self.gcra.emission_ns / 1000 * 1000,
            tolerance_ns: self.gcra.tolerance_ns / 1000 * 1000,
            burst: self.gcra.burst,
        };
        let (mut decision, _) = gcra.decide(Some(tat), now);
        decision.allowed = allowed == 1;
        Ok(decision)
    }
}
