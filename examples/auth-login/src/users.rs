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

impl Users {
    /// The user's stored hash.
    pub(crate) async fn get(&self, name: &str) -> Result<Option<String>, Unavailable> {
        match self {
            Self::Memory(users) => Ok(users
                .read()
                .map_err(|_| Unavailable("user table poisoned".into()))?
                .get(name)
                .cloned()),
            Self::Redis(redis) => redis::cmd("HGET")
                .arg(&redis.key)
                .arg(name)
                .query_async::<Option<String>>(&mut redis.connection.clone())
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
            Self::Redis(redis) => redis::cmd("HSETNX")
                .arg(&redis.key)
                .arg(name)
                .arg(hash)
                .query_async::<bool>(&mut redis.connection.clone())
                .await
                .map_err(failed),
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
            Self::Redis(redis) => redis::cmd("HSET")
                .arg(&redis.key)
                .arg(name)
                .arg(hash)
                .query_async::<i64>(&mut redis.connection.clone())
                .await
                .map(drop)
                .map_err(failed),
        }
    }
}
