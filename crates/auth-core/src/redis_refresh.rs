//! A [`RefreshStore`] in Redis (feature `redis`): refresh-token families with rotation and
//! reuse detection shared by every server process, so a token rotated on one instance and
//! presented again on another revokes the family.
//!
//! Layout, with `{h}` the token's SHA-256 in base64url: one hash per token,
//! `{prefix}rt:{h}`, with fields `f` (family), `s` (subject), `e` (expiry) and `u` (used),
//! expiring with the token (`EXPIREAT`); one set per family, `{prefix}rf:{family}`, with its
//! tokens' hashes; and after a revocation a tombstone `{prefix}rr:{family}` until the
//! family's last token would have expired, so that a rotation in flight cannot add a live
//! token to a revoked family.
//!
//! Each operation is one Lua script, so taking a token (exactly one of two concurrent takes
//! sees it unused), inserting into a family and revoking it are atomic. The keys a script
//! touches are not in one hash slot: this store is for a single Redis (with replicas), not
//! Redis Cluster. Expiry follows the Redis server's clock.
//!
//! Failures (connection refused, timeouts, errors) are [`Error::StoreUnavailable`] (503).

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use redis::aio::ConnectionManager;

use crate::redis_store::{Rerun, attempt_token, connect_redis, retry_once, unavailable};
use crate::refresh::{RefreshRecord, RefreshStore, TokenHash};
use crate::{Error, Result};

const INSERT: &str = r"
if redis.call('EXISTS', KEYS[3]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'f', ARGV[1], 's', ARGV[2], 'e', ARGV[3], 'u', ARGV[4])
redis.call('EXPIREAT', KEYS[1], ARGV[3])
redis.call('SADD', KEYS[2], ARGV[5])
local ttl = redis.call('TTL', KEYS[2])
local remaining = tonumber(ARGV[3]) - tonumber(redis.call('TIME')[1])
if ttl < remaining then
  redis.call('EXPIREAT', KEYS[2], ARGV[3])
end
return 1
";

/// Marks the token used with this attempt's token (`ARGV[1]`) and returns it as it was. A
/// take repeated after a dropped connection finds its own mark and sees the token as it
/// was before its first attempt (unused), so that a retry is not mistaken for a reuse.
const TAKE: &str = r"
local record = redis.call('HMGET', KEYS[1], 'f', 's', 'e', 'u')
if not record[1] then
  return false
end
if record[4] == ARGV[1] then
  record[4] = '0'
elseif not record[4] or record[4] == '0' then
  redis.call('HSET', KEYS[1], 'u', ARGV[1])
end
return record
";

const REVOKE: &str = r"
local hashes = redis.call('SMEMBERS', KEYS[1])
local latest = 0
for _, hash in ipairs(hashes) do
  local key = ARGV[1] .. hash
  local expires = tonumber(redis.call('HGET', key, 'e') or '0')
  if expires > latest then
    latest = expires
  end
  redis.call('DEL', key)
end
redis.call('DEL', KEYS[1])
if latest > tonumber(redis.call('TIME')[1]) then
  redis.call('SET', KEYS[2], '1', 'EXAT', latest)
end
return #hashes
";

/// Refresh-token records in Redis. Cloning is cheap and shares the connection.
#[derive(Clone)]
pub struct RedisRefreshStore {
    connection: ConnectionManager,
    prefix: Arc<str>,
    insert: Arc<redis::Script>,
    take: Arc<redis::Script>,
    revoke: Arc<redis::Script>,
}

impl std::fmt::Debug for RedisRefreshStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRefreshStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

type Fields = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn record(hash: &TokenHash, fields: Fields) -> Result<Option<RefreshRecord>> {
    let (Some(family), Some(subject), Some(expires_at), used) = fields else {
        return Ok(None);
    };
    let expires_at = expires_at
        .parse()
        .map_err(|_| Error::StoreUnavailable("a refresh-token record is corrupt".into()))?;
    Ok(Some(RefreshRecord {
        hash: *hash,
        family,
        subject,
        expires_at,
        // "0" unused; "1" or an attempt's mark (see TAKE) used.
        used: used.is_some_and(|used| used != "0"),
    }))
}

impl RedisRefreshStore {
    /// Connects to the Redis at `url`; keys start with `prefix`. Commands time out after 2
    /// seconds.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self> {
        Ok(Self::new(connect_redis(url).await?, prefix))
    }

    /// A store over a connection the application already has.
    pub fn new(connection: ConnectionManager, prefix: &str) -> Self {
        Self {
            connection,
            prefix: Arc::from(prefix),
            insert: Arc::new(redis::Script::new(INSERT)),
            take: Arc::new(redis::Script::new(TAKE)),
            revoke: Arc::new(redis::Script::new(REVOKE)),
        }
    }

    fn token_key(&self, hash: &TokenHash) -> String {
        format!("{}rt:{}", self.prefix, URL_SAFE_NO_PAD.encode(hash))
    }

    fn family_key(&self, family: &str) -> String {
        format!("{}rf:{family}", self.prefix)
    }

    fn tombstone_key(&self, family: &str) -> String {
        format!("{}rr:{family}", self.prefix)
    }
}

impl RefreshStore for RedisRefreshStore {
    async fn insert(&self, record: RefreshRecord) -> Result<()> {
        let mut invocation = self.insert.key(self.token_key(&record.hash));
        invocation
            .key(self.family_key(&record.family))
            .key(self.tombstone_key(&record.family))
            .arg(&record.family)
            .arg(&record.subject)
            .arg(record.expires_at)
            .arg(if record.used { "1" } else { "0" })
            .arg(URL_SAFE_NO_PAD.encode(record.hash));
        // A second run writes the same record: safe to repeat.
        let inserted: i64 = retry_once(Rerun::Safe, || {
            let mut connection = self.connection.clone();
            let invocation = &invocation;
            async move { invocation.invoke_async(&mut connection).await }
        })
        .await
        .map_err(unavailable)?;
        if inserted == 0 {
            return Err(Error::RefreshTokenInvalid);
        }
        Ok(())
    }

    async fn take(&self, hash: &TokenHash) -> Result<Option<RefreshRecord>> {
        let mut invocation = self.take.key(self.token_key(hash));
        invocation.arg(attempt_token()?);
        // The attempt's mark makes a repeat see its own take, not a reuse: safe to repeat.
        let fields: Option<Fields> = retry_once(Rerun::Safe, || {
            let mut connection = self.connection.clone();
            let invocation = &invocation;
            async move { invocation.invoke_async(&mut connection).await }
        })
        .await
        .map_err(unavailable)?;
        match fields {
            Some(fields) => record(hash, fields),
            None => Ok(None),
        }
    }

    async fn revoke_family(&self, family: &str) -> Result<()> {
        let mut invocation = self.revoke.key(self.family_key(family));
        invocation
            .key(self.tombstone_key(family))
            .arg(format!("{}rt:", self.prefix));
        // Revoking twice is revoking once: safe to repeat. (A repeat that finds the family
        // already emptied keeps the tombstone the first run wrote.)
        let _revoked: i64 = retry_once(Rerun::Safe, || {
            let mut connection = self.connection.clone();
            let invocation = &invocation;
            async move { invocation.invoke_async(&mut connection).await }
        })
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn get(&self, hash: &TokenHash) -> Result<Option<RefreshRecord>> {
        let command = redis::cmd("HMGET")
            .arg(self.token_key(hash))
            .arg(&["f", "s", "e", "u"][..])
            .clone();
        let fields: Fields = retry_once(Rerun::Safe, || {
            let mut connection = self.connection.clone();
            let command = &command;
            async move { command.query_async(&mut connection).await }
        })
        .await
        .map_err(unavailable)?;
        record(hash, fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The take script, with the attempt token given (as a repeat after a dropped
    /// connection passes the same one).
    async fn take_as(store: &RedisRefreshStore, hash: &TokenHash, token: &str) -> bool {
        let mut connection = store.connection.clone();
        let fields: Option<Fields> = store
            .take
            .key(store.token_key(hash))
            .arg(token)
            .invoke_async(&mut connection)
            .await
            .unwrap();
        record(hash, fields.unwrap()).unwrap().unwrap().used
    }

    #[tokio::test]
    async fn a_repeated_take_sees_its_own_mark_and_another_take_a_reuse() {
        let Ok(url) = std::env::var("REDIS_URL") else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "REDIS_URL must be set under CI=true"
            );
            println!("skipped: REDIS_URL is not set");
            return;
        };
        let prefix = format!("auth-core-take-test-{}:", std::process::id());
        let store = RedisRefreshStore::connect(&url, &prefix).await.unwrap();
        let hash = [7u8; 32];
        let expires_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 60;
        store
            .insert(RefreshRecord {
                hash,
                family: "f1".into(),
                subject: "alice".into(),
                expires_at,
                used: false,
            })
            .await
            .unwrap();
        assert!(!take_as(&store, &hash, "attempt-1").await, "first take");
        // The same attempt again (its first run did reach Redis): still its own, unused.
        assert!(!take_as(&store, &hash, "attempt-1").await, "repeated take");
        // Any other attempt sees the token used (a reuse), and so does a read.
        assert!(take_as(&store, &hash, "attempt-2").await, "second take");
        assert!(store.get(&hash).await.unwrap().unwrap().used);
        // The public take marks with a fresh token each time: a reuse.
        assert!(store.take(&hash).await.unwrap().unwrap().used);
        store.revoke_family("f1").await.unwrap();
    }
}
