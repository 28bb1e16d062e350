//! Where job records live ([`Settings::state_url`](crate::Settings::state_url)): in this
//! process (the default), or in a Redis that every instance on it shares (feature `redis`),
//! so that `GET /jobs/{id}`, the dead letters and re-drive answer the same on any instance.
//!
//! In Redis, a job is a hash `<prefix>:state:job:<id>` with fields `v` (a version), `job`
//! (the record as JSON) and `s` (its state), kept for the retention; the sorted set
//! `<prefix>:state:jobs` holds the ids by creation time (trimmed to the capacity) for the
//! listing. An update reads the record, changes it and writes it back only if `v` has not
//! moved meanwhile (a compare-and-set script), else reads it again: two instances updating
//! one job (a worker and a re-drive) do not lose each other's change. Every command names
//! one key, so the layout works on Redis Cluster as it is.
//!
//! Either way, the process also keeps its own copy of the records it wrote, for
//! [`App::job_counts`](crate::App::job_counts) (metrics, synchronous).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use broker_core::MessageId;

use crate::jobs::{Job, JobStore, NewJob};

/// The newest jobs `GET /jobs` counts by state when the records are in Redis.
pub const COUNT_WINDOW: usize = 1000;

/// The records: this process's, and the shared ones when configured.
#[derive(Debug)]
pub(crate) struct Records {
    local: JobStore,
    #[cfg(feature = "redis")]
    redis: Option<redis_records::RedisRecords>,
}

impl Records {
    /// In memory (`url` `None`), or in the Redis at `url` under `prefix`.
    pub(crate) async fn connect(
        url: Option<&str>,
        prefix: &str,
        capacity: usize,
        keep: Duration,
    ) -> Result<Self, String> {
        let local = JobStore::new(capacity);
        match url {
            None => Ok(Self {
                local,
                #[cfg(feature = "redis")]
                redis: None,
            }),
            #[cfg(feature = "redis")]
            Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
                let redis = redis_records::RedisRecords::connect(url, prefix, capacity, keep)
                    .await
                    .map_err(|error| format!("job records at {url}: {error}"))?;
                Ok(Self {
                    local,
                    redis: Some(redis),
                })
            }
            Some(url) => {
                let _ = (prefix, keep);
                Err(format!(
                    "STATE_URL {url:?}: expected redis://... (built with the feature `redis`), \
                     or unset for this process's memory"
                ))
            }
        }
    }

    /// `memory` or `redis`.
    pub(crate) fn engine(&self) -> &'static str {
        #[cfg(feature = "redis")]
        if self.redis.is_some() {
            return "redis";
        }
        "memory"
    }

    /// The jobs this process has seen, by state.
    pub(crate) fn local_counts(&self) -> BTreeMap<&'static str, usize> {
        self.local.recent(0).1
    }

    /// Records a job that is about to be published.
    pub(crate) async fn insert(
        &self,
        id: MessageId,
        job: &NewJob,
        now: SystemTime,
    ) -> Result<Job, String> {
        let record = self.local.insert(id, job, now);
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.redis
            && let Err(error) = redis.insert(id, &record, now).await
        {
            self.local.remove(id);
            return Err(error);
        }
        Ok(record)
    }

    /// Forgets a job whose publication failed.
    pub(crate) async fn remove(&self, id: MessageId) {
        self.local.remove(id);
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.redis
            && let Err(error) = redis.remove(id).await
        {
            tracing::warn!(%id, %error, "job record not removed");
        }
    }

    pub(crate) async fn get(&self, id: MessageId) -> Result<Option<Job>, String> {
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.redis {
            return redis.get(id).await;
        }
        Ok(self.local.get(id))
    }

    /// The newest `max` jobs, newest first, and the count of each state (in Redis: over
    /// the newest [`COUNT_WINDOW`]).
    pub(crate) async fn recent(
        &self,
        max: usize,
    ) -> Result<(Vec<Job>, BTreeMap<&'static str, usize>), String> {
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.redis {
            return redis.recent(max).await;
        }
        Ok(self.local.recent(max))
    }

    /// Applies `f` to the job's record (created from `job` when there is none; with `job`
    /// `None`, a missing record stays missing and `None` is returned).
    pub(crate) async fn update<T>(
        &self,
        id: MessageId,
        job: Option<&NewJob>,
        now: SystemTime,
        f: impl Fn(&mut Job) -> T,
    ) -> Result<Option<T>, String> {
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.redis {
            let updated = redis.update(id, job, now, &f).await?;
            return Ok(updated.map(|(out, record)| {
                self.local.put(id, record);
                out
            }));
        }
        Ok(self.local.update(id, job, now, f))
    }
}

#[cfg(feature = "redis")]
mod redis_records {
    use std::collections::BTreeMap;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use broker_core::MessageId;
    use redis::Script;
    use redis::aio::{ConnectionManager, ConnectionManagerConfig};

    use super::COUNT_WINDOW;
    use crate::jobs::{Job, JobState, NewJob, count, timestamp};

    /// KEYS: the job's hash. ARGV: the version read (`""`: none), the new version, the
    /// record, its state, the retention in ms. Writes only if the version is unchanged.
    const CAS: &str = r"
local v = redis.call('HGET', KEYS[1], 'v')
if (v or '') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'job', ARGV[3], 's', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
";

    /// How many times an update reads again after another instance's write.
    const TRIES: usize = 16;

    #[derive(Clone)]
    pub(crate) struct RedisRecords {
        conn: ConnectionManager,
        prefix: String,
        capacity: usize,
        keep: Duration,
        cas: Script,
    }

    impl std::fmt::Debug for RedisRecords {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("RedisRecords")
                .field("prefix", &self.prefix)
                .finish_non_exhaustive()
        }
    }

    fn failed(error: &redis::RedisError) -> String {
        format!("Redis: {error}")
    }

    fn ms(duration: Duration) -> u64 {
        u64::try_from(duration.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    impl RedisRecords {
        pub(crate) async fn connect(
            url: &str,
            prefix: &str,
            capacity: usize,
            keep: Duration,
        ) -> Result<Self, String> {
            let client = redis::Client::open(url).map_err(|e| failed(&e))?;
            // Commands time out, so a Redis that stops answering is a 503, not a hung request.
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(2)))
                .set_response_timeout(Some(Duration::from_secs(2)))
                .set_number_of_retries(1);
            let conn = ConnectionManager::new_with_config(client, config)
                .await
                .map_err(|e| failed(&e))?;
            Ok(Self {
                conn,
                prefix: prefix.to_owned(),
                capacity: capacity.max(1),
                keep,
                cas: Script::new(CAS),
            })
        }

        fn key(&self, id: MessageId) -> String {
            format!("{}:state:job:{id}", self.prefix)
        }

        fn index(&self) -> String {
            format!("{}:state:jobs", self.prefix)
        }

        /// Writes `record` if the version is still `read`; whether it did.
        async fn write(
            &self,
            id: MessageId,
            read: Option<u64>,
            record: &Job,
        ) -> Result<bool, String> {
            let text = serde_json::to_string(record).map_err(|e| e.to_string())?;
            let mut conn = self.conn.clone();
            let written: i64 = self
                .cas
                .key(self.key(id))
                .arg(read.map(|v| v.to_string()).unwrap_or_default())
                .arg(read.unwrap_or(0).saturating_add(1))
                .arg(text)
                .arg(record.state.as_str())
                .arg(ms(self.keep))
                .invoke_async(&mut conn)
                .await
                .map_err(|e| failed(&e))?;
            Ok(written == 1)
        }

        /// The record and its version.
        async fn read(&self, id: MessageId) -> Result<(Option<u64>, Option<Job>), String> {
            let mut conn = self.conn.clone();
            let (version, text): (Option<String>, Option<String>) = redis::cmd("HMGET")
                .arg(self.key(id))
                .arg("v")
                .arg("job")
                .query_async(&mut conn)
                .await
                .map_err(|e| failed(&e))?;
            let version = version.and_then(|v| v.parse().ok());
            let record = match text {
                Some(text) => Some(
                    serde_json::from_str(&text)
                        .map_err(|e| format!("job record {id} unreadable: {e}"))?,
                ),
                None => None,
            };
            Ok((version, record))
        }

        pub(crate) async fn insert(
            &self,
            id: MessageId,
            record: &Job,
            now: SystemTime,
        ) -> Result<(), String> {
            if !self.write(id, None, record).await? {
                return Err(format!("job {id} already recorded"));
            }
            let score = now.duration_since(UNIX_EPOCH).map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            });
            let capacity = i64::try_from(self.capacity).unwrap_or(i64::MAX);
            let mut conn = self.conn.clone();
            redis::pipe()
                .cmd("ZADD")
                .arg(self.index())
                .arg(score)
                .arg(id.to_string())
                .ignore()
                // The newest `capacity` ids stay listed.
                .cmd("ZREMRANGEBYRANK")
                .arg(self.index())
                .arg(0)
                .arg(-capacity - 1)
                .ignore()
                .query_async::<()>(&mut conn)
                .await
                .map_err(|e| failed(&e))
        }

        pub(crate) async fn remove(&self, id: MessageId) -> Result<(), String> {
            let mut conn = self.conn.clone();
            redis::pipe()
                .cmd("DEL")
                .arg(self.key(id))
                .ignore()
                .cmd("ZREM")
                .arg(self.index())
                .arg(id.to_string())
                .ignore()
                .query_async::<()>(&mut conn)
                .await
                .map_err(|e| failed(&e))
        }

        pub(crate) async fn get(&self, id: MessageId) -> Result<Option<Job>, String> {
            Ok(self.read(id).await?.1)
        }

        pub(crate) async fn update<T>(
            &self,
            id: MessageId,
            job: Option<&NewJob>,
            now: SystemTime,
            f: &impl Fn(&mut Job) -> T,
        ) -> Result<Option<(T, Job)>, String> {
            for _ in 0..TRIES {
                let (version, record) = self.read(id).await?;
                let mut record = match (record, job) {
                    (Some(record), _) => record,
                    (None, Some(job)) => Job::new(id, job, now),
                    (None, None) => return Ok(None),
                };
                let out = f(&mut record);
                record.updated_at = timestamp(now);
                if self.write(id, version, &record).await? {
                    return Ok(Some((out, record)));
                }
            }
            Err(format!(
                "job {id}: its record kept changing under {TRIES} updates"
            ))
        }

        pub(crate) async fn recent(
            &self,
            max: usize,
        ) -> Result<(Vec<Job>, BTreeMap<&'static str, usize>), String> {
            let mut conn = self.conn.clone();
            let window = i64::try_from(COUNT_WINDOW.max(max)).unwrap_or(i64::MAX);
            let ids: Vec<String> = redis::cmd("ZREVRANGE")
                .arg(self.index())
                .arg(0)
                .arg(window - 1)
                .query_async(&mut conn)
                .await
                .map_err(|e| failed(&e))?;
            if ids.is_empty() {
                return Ok((Vec::new(), BTreeMap::new()));
            }
            let mut pipe = redis::pipe();
            for id in &ids {
                pipe.cmd("HGET")
                    .arg(format!("{}:state:job:{id}", self.prefix))
                    .arg("s");
            }
            for id in ids.iter().take(max) {
                pipe.cmd("HGET")
                    .arg(format!("{}:state:job:{id}", self.prefix))
                    .arg("job");
            }
            let replies: Vec<Option<String>> =
                pipe.query_async(&mut conn).await.map_err(|e| failed(&e))?;
            let (states, records) = replies.split_at(ids.len().min(replies.len()));
            let counts = count(states.iter().flatten().filter_map(|s| JobState::parse(s)));
            // A record that expired, or that does not parse, is left out of the list.
            let jobs = records
                .iter()
                .flatten()
                .filter_map(|text| serde_json::from_str(text).ok())
                .collect();
            Ok((jobs, counts))
        }
    }
}
