//! A [`GrantStore`] in Redis (features `oauth` and `redis`): authorization codes, grants and
//! opaque access tokens shared by every server process, so the authorization request and
//! the token request may land on different instances, and a revocation on one holds on all.
//!
//! Layout, with `{h}` a token's SHA-256 in base64url: a code is a hash `{prefix}oc:{h}`
//! (kept after use, marked `x`, until it expires, so that a replay is recognized); a grant a
//! hash `{prefix}og:{id}`; the OpenID Connect part of a code or grant is JSON in its field `o`; an opaque access token a hash `{prefix}ot:{h}`, listed in the set
//! `{prefix}oa:{grant id}` so that revoking the grant removes it. Every key expires at its
//! record's expiry (`EXPIREAT`, the Redis server's clock).
//!
//! Taking a code, extending a grant, adding an access token and revoking a grant are each
//! one Lua script, so two instances exchanging the same code concurrently see it unused
//! exactly once. A command that fails because the connection dropped runs once more (the
//! first one after a Redis restart does); taking a code marks it with the attempt's own
//! token, so that a repeat is never mistaken for a replay. The keys a script touches are not in one hash slot: this store is for a
//! single Redis (with replicas), not Redis Cluster.
//!
//! Failures (connection refused, timeouts, errors) are [`Error::StoreUnavailable`], which
//! the endpoints answer with `temporarily_unavailable` (503).

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use redis::aio::ConnectionManager;

use super::{AccessRecord, CodeRecord, Grant, GrantStore, OpenIdGrant};
use crate::redis_store::{Rerun, attempt_token, connect_redis, retry_once, unavailable};
use crate::{Error, Result, TokenHash};

/// Marks the code used with this attempt's token (`ARGV[1]`) and returns it as it was. A
/// take repeated after a dropped connection finds its own mark and sees the code unused, so
/// that a retry is not mistaken for a replay.
const TAKE_CODE: &str = r"
local record = redis.call('HMGET', KEYS[1], 'c', 'r', 'p', 's', 'u', 'g', 'e', 'x', 'o')
if not record[1] then
  return false
end
if record[8] == ARGV[1] then
  record[8] = '0'
elseif not record[8] or record[8] == '0' then
  redis.call('HSET', KEYS[1], 'x', ARGV[1])
end
return record
";

const EXTEND_GRANT: &str = r"
local expires = redis.call('HGET', KEYS[1], 'e')
if not expires then
  return 0
end
if tonumber(ARGV[1]) > tonumber(expires) then
  redis.call('HSET', KEYS[1], 'e', ARGV[1])
  redis.call('EXPIREAT', KEYS[1], ARGV[1])
end
return 1
";

const INSERT_ACCESS: &str = r"
redis.call('HSET', KEYS[1], 'g', ARGV[1], 's', ARGV[2], 'i', ARGV[3], 'e', ARGV[4])
redis.call('EXPIREAT', KEYS[1], ARGV[4])
redis.call('SADD', KEYS[2], ARGV[5])
local ttl = redis.call('TTL', KEYS[2])
local remaining = tonumber(ARGV[4]) - tonumber(redis.call('TIME')[1])
if ttl < remaining then
  redis.call('EXPIREAT', KEYS[2], ARGV[4])
end
return 1
";

const REVOKE_GRANT: &str = r"
local hashes = redis.call('SMEMBERS', KEYS[2])
for _, hash in ipairs(hashes) do
  redis.call('DEL', ARGV[1] .. hash)
end
redis.call('DEL', KEYS[1], KEYS[2])
return #hashes
";

/// Codes, grants and opaque access tokens in Redis. Cloning is cheap and shares the
/// connection.
#[derive(Clone)]
pub struct RedisGrantStore {
    connection: ConnectionManager,
    prefix: Arc<str>,
    take_code: Arc<redis::Script>,
    extend_grant: Arc<redis::Script>,
    insert_access: Arc<redis::Script>,
    revoke_grant: Arc<redis::Script>,
}

impl std::fmt::Debug for RedisGrantStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisGrantStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn corrupt(what: &str) -> Error {
    Error::StoreUnavailable(format!("a stored {what} is corrupt"))
}

fn number(text: Option<String>, what: &str) -> Result<u64> {
    text.and_then(|text| text.parse().ok())
        .ok_or_else(|| corrupt(what))
}

fn required(text: Option<String>, what: &str) -> Result<String> {
    text.ok_or_else(|| corrupt(what))
}

/// The OpenID Connect part of a code or grant, as JSON in field `o`.
fn openid_json(openid: &OpenIdGrant) -> Result<String> {
    serde_json::to_string(openid).map_err(|error| Error::StoreUnavailable(error.to_string()))
}

fn openid_record(text: Option<String>, what: &str) -> Result<Option<OpenIdGrant>> {
    text.map(|text| serde_json::from_str(&text).map_err(|_| corrupt(what)))
        .transpose()
}

/// Scope tokens never contain a space (RFC 6749 section 3.3), so a space joins them.
fn scope_list(text: Option<String>) -> Vec<String> {
    text.unwrap_or_default()
        .split(' ')
        .filter(|token| !token.is_empty())
        .map(str::to_owned)
        .collect()
}

impl RedisGrantStore {
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
            take_code: Arc::new(redis::Script::new(TAKE_CODE)),
            extend_grant: Arc::new(redis::Script::new(EXTEND_GRANT)),
            insert_access: Arc::new(redis::Script::new(INSERT_ACCESS)),
            revoke_grant: Arc::new(redis::Script::new(REVOKE_GRANT)),
        }
    }

    fn code_key(&self, hash: &TokenHash) -> String {
        format!("{}oc:{}", self.prefix, URL_SAFE_NO_PAD.encode(hash))
    }

    fn grant_key(&self, id: &str) -> String {
        format!("{}og:{id}", self.prefix)
    }

    fn access_key(&self, hash: &TokenHash) -> String {
        format!("{}ot:{}", self.prefix, URL_SAFE_NO_PAD.encode(hash))
    }

    fn grant_tokens_key(&self, id: &str) -> String {
        format!("{}oa:{id}", self.prefix)
    }
}

impl GrantStore for RedisGrantStore {
    async fn insert_code(&self, hash: TokenHash, record: CodeRecord) -> Result<()> {
        let key = self.code_key(&hash);
        let mut fields = vec![
            ("c", record.client_id.clone()),
            ("r", record.redirect_uri.clone()),
            ("p", record.code_challenge.clone()),
            ("s", record.scope.join(" ")),
            ("u", record.subject.clone()),
            ("g", record.grant_id.clone()),
            ("e", record.expires_at.to_string()),
            ("x", if record.used { "1" } else { "0" }.to_owned()),
        ];
        if let Some(openid) = &record.openid {
            fields.push(("o", openid_json(openid)?));
        }
        let pipeline = redis::pipe()
            .atomic()
            .hset_multiple(&key, &fields)
            .ignore()
            .expire_at(&key, i64::try_from(record.expires_at).unwrap_or(i64::MAX))
            .ignore()
            .clone();
        retry_once(Rerun::Safe, || {
            let mut connection = self.connection.clone();
            let pipeline = &pipeline;
            async move { pipeline.query_async::<()>(&mut connection).await }
        })
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn take_code(&self, hash: &TokenHash) -> Result<Option<CodeRecord>> {
        type Fields = Option<Vec<Option<String>>>;
        let mut invocation = self.take_code.key(self.code_key(hash));
        invocation.arg(attempt_token()?);
        // The attempt's mark makes a repeat see its own take, not a replay: safe to repeat.
        let fields: Fields = retry_once(Rerun::Safe, || {
            let mut connection = self.connection.clone();
            let invocation = &invocation;
            async move { invocation.invoke_async(&mut connection).await }
        })
        .await
        .map_err(unavailable)?;
        let Some(fields) = fields else {
            return Ok(None);
        };
        let mut fields = fields.into_iter();
        let mut next = || fields.next().flatten();
        Ok(Some(CodeRecord {
            client_id: required(next(), "code")?,
            redirect_uri: required(next(), "code")?,
            code_challenge: required(next(), "code")?,
            scope: scope_list(next()),
            subject: required(next(), "code")?,
            grant_id: required(next(), "code")?,
            expires_at: number(next(), "code")?,
            // "0" unused; "1" or an attempt's mark (see TAKE_CODE) used.
            used: next().is_some_and(|used| used != "0"),
            openid: openid_record(next(), "code")?,
        }))
    }

    async fn insert_grant(&self, grant: Grant) -> Result<()> {
        let key = self.grant_key(&grant.id);
        let mut fields = vec![
            ("c", grant.client_id.clone()),
            ("s", grant.scope.join(" ")),
            ("e", grant.expires_at.to_string()),
        ];
        if let Some(subject) = &grant.subject {
            fields.push(("u", subject.clone()));
        }
        if let Some(openid) = &grant.openid {
            fields.push(("o", openid_json(openid)?));
        }
        let pipeline = redis::pipe()
            .atomic()
            .del(&key)
            .ignore()
            .hset_multiple(&key, &fields)
            .ignore()
            .expire_at(&key, i64::try_from(grant.expires_at).unwrap_or(i64::MAX))
            .ignore()
            .clone();
        retry_once(Rerun::Safe, || {
            let mut connection = self.connection.clone();
            let pipeline = &pipeline;
            async move { pipeline.query_async::<()>(&mut connection).await }
        })
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn extend_grant(&self, id: &str, expires_at: u64) -> Result<bool> {
        let mut invocation = self.extend_grant.key(self.grant_key(id));
        invocation.arg(expires_at);
        let live: i64 = retry_once(Rerun::Safe, || {
            let mut connection = self.connection.clone();
            let invocation = &invocation;
            async move { invocation.invoke_async(&mut connection).await }
        })
        .await
        .map_err(unavailable)?;
        Ok(live == 1)
    }

    async fn grant(&self, id: &str) -> Result<Option<Grant>> {
        // Client, scope, expiry, subject, OpenID Connect part.
        type GrantFields = (
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let command = redis::cmd("HMGET")
            .arg(self.grant_key(id))
            .arg(&["c", "s", "e", "u", "o"][..])
            .clone();
        let (client_id, scope, expires_at, subject, openid): GrantFields =
            retry_once(Rerun::Safe, || {
                let mut connection = self.connection.clone();
                let command = &command;
                async move { command.query_async(&mut connection).await }
            })
            .await
            .map_err(unavailable)?;
        let Some(client_id) = client_id else {
            return Ok(None);
        };
        Ok(Some(Grant {
            id: id.to_owned(),
            client_id,
            subject,
            scope: scope_list(scope),
            expires_at: number(expires_at, "grant")?,
            openid: openid_record(openid, "grant")?,
        }))
    }

    async fn revoke_grant(&self, id: &str) -> Result<()> {
        let mut invocation = self.revoke_grant.key(self.grant_key(id));
        invocation
            .key(self.grant_tokens_key(id))
            .arg(format!("{}ot:", self.prefix));
        let _removed: i64 = retry_once(Rerun::Safe, || {
            let mut connection = self.connection.clone();
            let invocation = &invocation;
            async move { invocation.invoke_async(&mut connection).await }
        })
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn insert_access_token(&self, hash: TokenHash, record: AccessRecord) -> Result<()> {
        let mut invocation = self.insert_access.key(self.access_key(&hash));
        invocation
            .key(self.grant_tokens_key(&record.grant_id))
            .arg(&record.grant_id)
            .arg(record.scope.join(" "))
            .arg(record.issued_at)
            .arg(record.expires_at)
            .arg(URL_SAFE_NO_PAD.encode(hash));
        let _: i64 = retry_once(Rerun::Safe, || {
            let mut connection = self.connection.clone();
            let invocation = &invocation;
            async move { invocation.invoke_async(&mut connection).await }
        })
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn access_token(&self, hash: &TokenHash) -> Result<Option<AccessRecord>> {
        let command = redis::cmd("HMGET")
            .arg(self.access_key(hash))
            .arg(&["g", "s", "i", "e"][..])
            .clone();
        let (grant_id, scope, issued_at, expires_at): (
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        ) = retry_once(Rerun::Safe, || {
            let mut connection = self.connection.clone();
            let command = &command;
            async move { command.query_async(&mut connection).await }
        })
        .await
        .map_err(unavailable)?;
        let Some(grant_id) = grant_id else {
            return Ok(None);
        };
        Ok(Some(AccessRecord {
            grant_id,
            scope: scope_list(scope),
            issued_at: number(issued_at, "access token")?,
            expires_at: number(expires_at, "access token")?,
        }))
    }
}
