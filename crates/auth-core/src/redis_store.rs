//! A [`SessionStore`] in Redis (feature `redis`), shared by every server process.
//!
//! Layout: one hash per session, `{prefix}s:{id}`, with fields `c` (created), `l` (last
//! seen), `u` (user) and `d:{key}` (each data key as JSON), expiring with the session
//! (`EXPIREAT`); one set per user, `{prefix}u:{user}`, with the user's session ids, for
//! "log out everywhere".
//!
//! Concurrency: a save is one Lua script, so it is atomic. It writes only the data keys the
//! request changed, so concurrent requests of one session that change different keys both
//! keep their change; a save that is not a full write applies only if the session still
//! exists, so a revocation is never undone by a request that was in flight. The two keys a
//! script touches are not in one hash slot, so this store is for a single Redis (with
//! replicas), not Redis Cluster.
//!
//! Failures (connection refused, timeouts, errors) are [`Error::StoreUnavailable`] (503).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::session::{SessionChange, SessionId, SessionRecord, SessionStore};
use crate::{Error, Result};

const SAVE: &str = r"
local key = KEYS[1]
if ARGV[1] == '1' then
  redis.call('DEL', key)
elseif redis.call('EXISTS', key) == 0 then
  return 0
end
local fields = {'c', ARGV[4], 'l', ARGV[5]}
if ARGV[3] ~= '' then
  table.insert(fields, 'u')
  table.insert(fields, ARGV[3])
end
local n = tonumber(ARGV[7])
local i = 8
for _ = 1, n do
  table.insert(fields, ARGV[i])
  table.insert(fields, ARGV[i + 1])
  i = i + 2
end
redis.call('HSET', key, unpack(fields))
if ARGV[3] == '' then
  redis.call('HDEL', key, 'u')
end
while i <= #ARGV do
  redis.call('HDEL', key, ARGV[i])
  i = i + 1
end
redis.call('EXPIREAT', key, ARGV[2])
if ARGV[3] ~= '' then
  redis.call('SADD', KEYS[2], ARGV[6])
  local ttl = redis.call('TTL', KEYS[2])
  local remaining = tonumber(ARGV[2]) - tonumber(redis.call('TIME')[1])
  if ttl < remaining then
    redis.call('EXPIREAT', KEYS[2], ARGV[2])
  end
end
return 1
";

const DELETE_USER: &str = r"
local ids = redis.call('SMEMBERS', KEYS[1])
local n = 0
for _, id in ipairs(ids) do
  n = n + redis.call('DEL', ARGV[1] .. id)
end
redis.call('DEL', KEYS[1])
return n
";

/// Sessions in Redis. Cloning is cheap and shares the connection.
#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    prefix: Arc<str>,
    save: Arc<redis::Script>,
    delete_user: Arc<redis::Script>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

pub(crate) fn unavailable(error: redis::RedisError) -> Error {
    Error::StoreUnavailable(error.to_string())
}

/// Whether a command that failed with `error` may run once more.
///
/// After Redis restarts (or a connection is cut), the first command on a connection fails:
/// either the connection was found dead when the command was handed to it, or the new
/// connection could not be made yet. The [`ConnectionManager`] reconnects on that failure,
/// so a second attempt finds the new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rerun {
    /// Running the command twice leaves the same state as once (or a stricter one, such as
    /// a failure counted twice): retry when the connection dropped or was refused, even if
    /// the first attempt may have reached Redis.
    Safe,
    /// Retry only when the first attempt cannot have reached Redis (the connection was
    /// refused).
    IfUnsent,
}

impl Rerun {
    /// A connection-level failure that allows another attempt. Never a timeout (the
    /// command may still be running) nor an error Redis answered (script or data errors).
    pub(crate) fn allows(self, error: &redis::RedisError) -> bool {
        match self {
            Self::Safe => error.is_connection_refusal() || error.is_connection_dropped(),
            Self::IfUnsent => error.is_connection_refusal(),
        }
    }
}

/// Runs `command`, and once more when its failure is one that `rerun` allows.
pub(crate) async fn retry_once<T, F, Fut>(rerun: Rerun, mut command: F) -> redis::RedisResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = redis::RedisResult<T>>,
{
    match command().await {
        Err(error) if rerun.allows(&error) => command().await,
        result => result,
    }
}

/// 16 random bytes in hex: the mark of one attempt of a claim, so that a retried claim
/// recognises its own first attempt (see the take scripts).
pub(crate) fn attempt_token() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|error| Error::StoreUnavailable(error.to_string()))?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// A reconnecting connection to the Redis at `url` whose commands time out after 2 seconds,
/// so an unresponsive server becomes [`Error::StoreUnavailable`] instead of a hung request.
pub(crate) async fn connect_redis(url: &str) -> Result<ConnectionManager> {
    let client = redis::Client::open(url).map_err(unavailable)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(1);
    ConnectionManager::new_with_config(client, config)
        .await
        .map_err(unavailable)
}

impl RedisStore {
    /// Connects to the Redis at `url` (`redis://host:port/db`); keys start with `prefix`
    /// (for example `"myapp:"`). Commands time out after 2 seconds.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self> {
        let connection = connect_redis(url).await?;
        Ok(Self {
            connection,
            prefix: Arc::from(prefix),
            save: Arc::new(redis::Script::new(SAVE)),
            delete_user: Arc::new(redis::Script::new(DELETE_USER)),
        })
    }

    fn session_key(&self, id: &SessionId) -> String {
        format!("{}s:{id}", self.prefix)
    }

    fn user_key(&self, user: &str) -> String {
        format!("{}u:{user}", self.prefix)
    }
}

fn corrupt(what: &str) -> Error {
    Error::CorruptSession(what.to_owned())
}

impl SessionStore for RedisStore {
    async fn load(&self, id: &SessionId) -> Result<Option<SessionRecord>> {
        let command = redis::cmd("HGETALL").arg(self.session_key(id)).clone();
        let fields: Vec<(String, String)> = retry_once(Rerun::Safe, || {
            let mut connection = self.connection.clone();
            let command = &command;
            async move { command.query_async(&mut connection).await }
        })
        .await
        .map_err(unavailable)?;
        if fields.is_empty() {
            return Ok(None);
        }
        let mut created_at = None;
        let mut last_seen = None;
        let mut user = None;
        let mut data = BTreeMap::new();
        for (field, value) in fields {
            match field.as_str() {
                "c" => created_at = Some(value.parse().map_err(|_| corrupt("created time"))?),
                "l" => last_seen = Some(value.parse().map_err(|_| corrupt("last-seen time"))?),
                "u" => user = Some(Arc::from(value)),
                _ => {
                    if let Some(key) = field.strip_prefix("d:") {
                        let value =
                            serde_json::from_str(&value).map_err(|_| corrupt("data value"))?;
                        data.insert(key.to_owned(), value);
                    }
                }
            }
        }
        // A hash without its metadata is the remnant of a revoked session: absent.
        let (Some(created_at), Some(last_seen)) = (created_at, last_seen) else {
            return Ok(None);
        };
        Ok(Some(SessionRecord {
            user,
            data: Arc::new(data),
            created_at,
            last_seen,
        }))
    }

    async fn save(&self, id: &SessionId, change: &SessionChange<'_>) -> Result<()> {
        let record = change.record;
        let user = record.user.as_deref().unwrap_or("");
        let mut invocation = self.save.prepare_invoke();
        invocation
            .key(self.session_key(id))
            .key(self.user_key(user))
            .arg(if change.full { "1" } else { "0" })
            .arg(change.expires_at)
            .arg(user)
            .arg(record.created_at)
            .arg(record.last_seen)
            .arg(id.to_string());
        // A full write stores every key; otherwise only those set by the request.
        let set: Vec<(&str, &serde_json::Value)> = if change.full {
            record
                .data
                .iter()
                .map(|(key, value)| (key.as_str(), value))
                .collect()
        } else {
            change
                .set
                .iter()
                .filter_map(|key| record.data.get(*key).map(|value| (*key, value)))
                .collect()
        };
        invocation.arg(set.len());
        for (key, value) in set {
            invocation.arg(format!("d:{key}")).arg(value.to_string());
        }
        if !change.full {
            for key in &change.removed {
                invocation.arg(format!("d:{key}"));
            }
        }
        // Saving twice writes the same fields: safe to repeat.
        let _applied: i64 = retry_once(Rerun::Safe, || {
            let mut connection = self.connection.clone();
            let invocation = &invocation;
            async move { invocation.invoke_async(&mut connection).await }
        })
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn delete(&self, id: &SessionId) -> Result<()> {
        let command = redis::cmd("DEL").arg(self.session_key(id)).clone();
        let _: i64 = retry_once(Rerun::Safe, || {
            let mut connection = self.connection.clone();
            let command = &command;
            async move { command.query_async(&mut connection).await }
        })
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn delete_user(&self, user: &str) -> Result<usize> {
        let mut invocation = self.delete_user.prepare_invoke();
        invocation
            .key(self.user_key(user))
            .arg(format!("{}s:", self.prefix));
        // A second run deletes what is left: safe to repeat (it may count fewer).
        let removed: usize = retry_once(Rerun::Safe, || {
            let mut connection = self.connection.clone();
            let invocation = &invocation;
            async move { invocation.invoke_async(&mut connection).await }
        })
        .await
        .map_err(unavailable)?;
        Ok(removed)
    }
}

const SHARE: &str = r"
local value = redis.call('GET', KEYS[1])
if value then
  return value
end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
";

/// The value under `key` in the Redis at `url`; when there is none, `make()` is stored
/// there first (atomically: of instances starting together, the first one's value wins and
/// all return it). For secrets that every instance must share and that no operator has
/// configured, such as a [`KeySet`](crate::KeySet) in the form of
/// [`Key::generate_config`](crate::Key::generate_config) or a cookie key ring. The value has
/// no expiry; rotating it is the operator's act. Anyone who can read this Redis can read
/// the secret: prefer configuration where Redis is less trusted than it.
pub async fn shared_secret(
    url: &str,
    key: &str,
    make: impl FnOnce() -> Result<String>,
) -> Result<String> {
    let connection = connect_redis(url).await?;
    let command = redis::cmd("GET").arg(key).clone();
    let existing: Option<String> = retry_once(Rerun::Safe, || {
        let mut connection = connection.clone();
        let command = &command;
        async move { command.query_async(&mut connection).await }
    })
    .await
    .map_err(unavailable)?;
    if let Some(existing) = existing {
        return Ok(existing);
    }
    let value = make()?;
    let script = redis::Script::new(SHARE);
    let mut invocation = script.key(key);
    invocation.arg(value);
    // A second run returns the value the first one stored: safe to repeat.
    retry_once(Rerun::Safe, || {
        let mut connection = connection.clone();
        let invocation = &invocation;
        async move { invocation.invoke_async(&mut connection).await }
    })
    .await
    .map_err(unavailable)
}

#[cfg(test)]
mod retry_tests {
    use super::*;

    fn io(kind: std::io::ErrorKind) -> redis::RedisError {
        redis::RedisError::from(std::io::Error::from(kind))
    }

    #[test]
    fn a_refused_connection_allows_any_repeat_a_dropped_one_only_a_safe_one() {
        use std::io::ErrorKind::{BrokenPipe, ConnectionRefused, ConnectionReset, TimedOut};
        assert!(Rerun::Safe.allows(&io(ConnectionRefused)));
        assert!(Rerun::IfUnsent.allows(&io(ConnectionRefused)));
        for dropped in [BrokenPipe, ConnectionReset] {
            assert!(Rerun::Safe.allows(&io(dropped)));
            assert!(!Rerun::IfUnsent.allows(&io(dropped)));
        }
        // A timeout: the command may still run; an answer from Redis: it did run.
        assert!(!Rerun::Safe.allows(&io(TimedOut)));
        let answered = redis::RedisError::from((redis::ErrorKind::Client, "script error"));
        assert!(!Rerun::Safe.allows(&answered));
    }

    #[tokio::test]
    async fn the_second_attempt_runs_only_when_allowed() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let runs = AtomicUsize::new(0);
        let failing = || {
            runs.fetch_add(1, Ordering::Relaxed);
            async { Err::<(), _>(io(std::io::ErrorKind::BrokenPipe)) }
        };
        assert!(retry_once(Rerun::IfUnsent, failing).await.is_err());
        assert_eq!(runs.load(Ordering::Relaxed), 1);
        assert!(retry_once(Rerun::Safe, failing).await.is_err());
        assert_eq!(runs.load(Ordering::Relaxed), 3);
    }
}
