//! The user table (name to PHC hash): in this process, or in one Redis hash shared by every
//! instance ([`RedisUsers`]), so that an account made on one instance logs in on any.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// The users in Redis: one hash, field = user name, value = PHC password hash. One key, so
/// it is fine under Redis Cluster too. Cloning is cheap and shares the connection.
#[derive(Clone, Debug)]
pub struct RedisUsers {
    connection: ConnectionManager,
    key: String,
}

impl RedisUsers {
    /// Connects to the Redis at `url`; the table is the hash `key` (for example
    /// `"myapp:users"`). Commands time out after 2 seconds.
    pub async fn connect(url: &str, key: &str) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|error| error.to_string())?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1);
        let connection = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|error| error.to_string())?;
        Ok(Self {
            connection,
            key: key.to_owned(),
        })
    }
}

/// The store could not be reached or failed; the request is answered 503.
#[derive(Debug)]
pub(crate) struct Unavailable(pub(crate) String);

/// Where the users are ([`crate::Settings::user_store`]).
#[derive(Debug)]
pub(crate) enum Users {
    Memory(RwLock<HashMap<String, String>>),
    Redis(RedisUsers),
}

fn failed(error: redis::RedisError) -> Unavailable {
    Unavailable(error.to_string())
}

/// A failure after which a command may run once more: the connection dropped or was
/// refused (the first command after a Redis restart fails so, and the connection manager
/// reconnects on it). Never a timeout nor an error Redis answered.
fn connection_dropped(error: &redis::RedisError) -> bool {
    error.is_connection_refusal() || error.is_connection_dropped()
}

impl RedisUsers {
    /// Runs `command`, and once more when the connection dropped; for commands that are
    /// safe to repeat.
    async fn query<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> redis::RedisResult<T> {
        match command.query_async(&mut self.connection.clone()).await {
            Err(error) if connection_dropped(&error) => {
                command.query_async(&mut self.connection.clone()).await
            }
            result => result,
        }
    }

    /// `HSETNX`, once more when the connection dropped. A repeat answers "taken" if the first
    /// attempt did reach Redis; the stored hash then tells: a PHC hash has a random salt, so
    /// finding ours means the first attempt made the account.
    async fn insert_new(&self, name: &str, hash: &str) -> redis::RedisResult<bool> {
        let command = redis::cmd("HSETNX")
            .arg(&self.key)
            .arg(name)
            .arg(hash)
            .clone();
        match command.query_async(&mut self.connection.clone()).await {
            Err(error) if connection_dropped(&error) => {
                if self.query::<bool>(&command).await? {
                    return Ok(true);
                }
                let stored: Option<String> = self
                    .query(redis::cmd("HGET").arg(&self.key).arg(name))
                    .await?;
                Ok(stored.as_deref() == Some(hash))
            }
            result => result,
        }
    }
}

impl Users {
    /// The user's stored hash.
    pub(crate) async fn get(&self, name: &str) -> Result<Option<String>, Unavailable> {
        match self {
            Self::Memory(users) => Ok(users
                .read()
                .map_err(|_| Unavailable("user table poisoned".into()))?
                .get(name)
                .cloned()),
            Self::Redis(redis) => redis
                .query::<Option<String>>(redis::cmd("HGET").arg(&redis.key).arg(name))
                .await
                .map_err(failed),
        }
    }

    /// Adds the user unless the name is taken (atomically); `false` when it was.
    pub(crate) async fn insert_new(&self, name: &str, hash: String) -> Result<bool, Unavailable> {
        match self {
            Self::Memory(users) => {
                let mut users = users
                    .write()
                    .map_err(|_| Unavailable("user table poisoned".into()))?;
                if users.contains_key(name) {
                    return Ok(false);
                }
                users.insert(name.to_owned(), hash);
                Ok(true)
            }
            Self::Redis(redis) => redis.insert_new(name, &hash).await.map_err(failed),
        }
    }

    /// Replaces the user's hash (a rehash with current parameters).
    pub(crate) async fn replace(&self, name: &str, hash: String) -> Result<(), Unavailable> {
        match self {
            Self::Memory(users) => {
                users
                    .write()
                    .map_err(|_| Unavailable("user table poisoned".into()))?
                    .insert(name.to_owned(), hash);
                Ok(())
            }
            Self::Redis(redis) => redis
                .query::<i64>(redis::cmd("HSET").arg(&redis.key).arg(name).arg(hash))
                .await
                .map(drop)
                .map_err(failed),
        }
    }
}
