//! Redis Streams backend (feature `redis`).
//!
//! Per queue, under the broker's key prefix: a stream `<prefix><queue>:s` with a consumer
//! group `bk` (entries hold the wire header block `h` and the payload `p`), a sorted set
//! `<prefix><queue>:d` of delayed retries scored by due time in milliseconds, and a stream
//! `<prefix><queue>:dl` of dead letters. A fetch moves due retries into the stream, claims
//! entries idle longer than the ack wait (`XAUTOCLAIM`, with `XPENDING` for the delivery
//! count), then reads new entries (`XREADGROUP`). Settlements are Lua scripts, so
//! `XACK` and the move to the retry set or the dead letters happen atomically.
//!
//! Queue configuration lives in the process that declared the queue: every process that
//! fetches or settles declares its queues first. Retry due times use the client's clock.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use redis::aio::{ConnectionManager, MultiplexedConnection};
use redis::{Script, Value};

use crate::broker::DeliveryToken;
use crate::held::Held;
use crate::ordering::refuse_ordering_key;
use crate::request_reply::{prepare_reply, prepare_request};
use crate::retry::JitterSource;
use crate::settlement::{decide, decide_expired};
use crate::{
    Broker, Capabilities, DeadLetter, Delivery, Disposition, Envelope, Error, QueueConfig, Result,
    Settlement, check_queue_name,
};

const GROUP: &str = "bk";
/// The longest single blocking read; the fetch loop re-checks retries and claims between.
const BLOCK_SLICE: Duration = Duration::from_millis(100);
/// Connection and response timeout of every connection (blocking commands block at most
/// 250 ms): the client's defaults (1 s, 500 ms) leave too little room on a busy machine, as
/// when the TLS handshakes of 200 concurrent requests hold up the shared connection.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// While new entries keep coming, a fetch moves due retries and claims expired deliveries
/// at most this often per queue (a fetch that finds no new entry always does it): a due
/// retry or an expired delivery is handed out at most this much later under load, and a
/// busy consumer's fetch is one round trip instead of three.
const HOUSEKEEPING_EVERY: Duration = Duration::from_millis(50);

const MOVE_DUE: &str = r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(due) do
  local colon = string.find(m, ':', 1, true)
  local n = tonumber(string.sub(m, 1, colon - 1))
  redis.call('XADD', KEYS[2], '*', 'h', string.sub(m, colon + 1, colon + n), 'p', string.sub(m, colon + n + 1))
  redis.call('ZREM', KEYS[1], m)
end
return #due
";

/// KEYS: stream, retry set, dead stream. ARGV: group, entry id, mode, score, h, p.
const SETTLE: &str = r"
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
if ARGV[3] == 'retry' then
  redis.call('ZADD', KEYS[2], ARGV[4], string.len(ARGV[5]) .. ':' .. ARGV[5] .. ARGV[6])
elseif ARGV[3] == 'dead' then
  redis.call('XADD', KEYS[3], '*', 'h', ARGV[5], 'p', ARGV[6])
end
return 1
";

/// KEYS: the topic's set of bound queues. ARGV: key prefix, h, p.
const PUBLISH_TOPIC: &str = r"
local queues = redis.call('SMEMBERS', KEYS[1])
for _, q in ipairs(queues) do
  redis.call('XADD', ARGV[1] .. q .. ':s', '*', 'h', ARGV[2], 'p', ARGV[3])
end
return #queues
";

/// How long a reply waits in its list for a requester that is still polling.
const REPLY_TTL_SECS: u64 = 60;

/// KEYS: dead stream, stream. ARGV: entry id, h, p.
const REDRIVE: &str = r"
if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('XADD', KEYS[2], '*', 'h', ARGV[2], 'p', ARGV[3])
return 1
";

/// A [`Broker`] on Redis Streams.
pub struct RedisBroker {
    client: redis::Client,
    conn: ConnectionManager,
    blocking: Mutex<Vec<MultiplexedConnection>>,
    prefix: String,
    queues: Mutex<HashMap<String, QueueConfig>>,
    /// When each queue's due retries and expired deliveries were last looked at.
    housekept: Mutex<HashMap<String, tokio::time::Instant>>,
    jitter: Mutex<JitterSource>,
    settle: Script,
    redrive: Script,
    publish_topic: Script,
    held: Held,
}

impl std::fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBroker")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// A client for `url`: `redis://`, or `rediss://` (feature `tls`) with the TLS files of the
/// URL's query (`cacertfile`, `certfile`, `keyfile`).
///
/// # Errors
/// [`Error::Backend`] for a URL the client refuses; [`Error::Tls`] for TLS files that
/// cannot be used; [`Error::FeatureDisabled`] for `rediss://` without feature `tls`;
/// [`Error::InvalidConfig`] for TLS files on a `redis://` URL.
pub(crate) fn open_client(url: &str) -> Result<redis::Client> {
    let secure = url
        .get(..9)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("rediss://"))
        .then_some("rediss");
    match crate::tls::TlsFiles::for_url(
        url,
        secure,
        "cacertfile, certfile and keyfile need a rediss:// URL",
    )? {
        None => redis::Client::open(url).map_err(|e| backend(&e)),
        Some(files) => files.redis_client(url),
    }
}

fn backend(e: &redis::RedisError) -> Error {
    Error::Backend {
        backend: "redis",
        detail: e.to_string(),
    }
}

fn malformed(what: &str) -> Error {
    Error::Backend {
        backend: "redis",
        detail: format!("unexpected reply: {what}"),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn bytes_of(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn text_of(v: &Value) -> Option<&str> {
    bytes_of(v).and_then(|b| std::str::from_utf8(b).ok())
}

/// One stream entry: its id and the `h` and `p` fields.
struct Entry {
    id: String,
    headers: Vec<u8>,
    payload: Bytes,
}

/// Parses `[id, [field, value, ...]]` entries; entries without fields (deleted) are skipped.
fn entries(v: &Value) -> Result<Vec<Entry>> {
    let Value::Array(items) = v else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Value::Array(pair) = item else {
            return Err(malformed("stream entry is not an array"));
        };
        let (Some(id), Some(fields)) = (pair.first().and_then(text_of), pair.get(1)) else {
            return Err(malformed("stream entry without id"));
        };
        let Value::Array(fields) = fields else {
            continue;
        };
        let (mut h, mut p) = (None, None);
        for kv in fields.chunks(2) {
            match (kv.first().and_then(bytes_of), kv.get(1).and_then(bytes_of)) {
                (Some(b"h"), Some(value)) => h = Some(value.to_vec()),
                (Some(b"p"), Some(value)) => p = Some(Bytes::copy_from_slice(value)),
                _ => {}
            }
        }
        let (Some(headers), Some(payload)) = (h, p) else {
            return Err(malformed("stream entry without h and p fields"));
        };
        out.push(Entry {
            id: id.to_owned(),
            headers,
            payload,
        });
    }
    Ok(out)
}

/// The millisecond part of a stream id (`<ms>-<seq>`).
fn entry_time(id: &str) -> SystemTime {
    let ms = id
        .split('-')
        .next()
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(0);
    UNIX_EPOCH + Duration::from_millis(ms)
}

struct Keys {
    stream: String,
    retry: String,
    dead: String,
}

impl RedisBroker {
    /// Connects to `url` (`redis://host:port/db`); every key starts with `prefix`
    /// (give each application, or each test, its own).
    ///
    /// # Errors
    /// [`Error::Backend`] when the URL is invalid or the server cannot be reached.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self> {
        let client = open_client(url)?;
        let conn = client
            .get_connection_manager_with_config(
                redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(RESPONSE_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT)),
            )
            .await
            .map_err(|e| backend(&e))?;
        Ok(Self {
            client,
            conn,
            blocking: Mutex::new(Vec::new()),
            prefix: prefix.to_owned(),
            queues: Mutex::new(HashMap::new()),
            housekept: Mutex::new(HashMap::new()),
            jitter: Mutex::new(JitterSource::from_entropy()),
            settle: Script::new(SETTLE),
            redrive: Script::new(REDRIVE),
            publish_topic: Script::new(PUBLISH_TOPIC),
            held: Held::default(),
        })
    }

    /// Acks deliveries of one queue in one atomic pipeline; pushes a result per delivery.
    async fn ack_all(&self, deliveries: &[Delivery], out: &mut Vec<Result<Disposition>>) {
        let Some(first) = deliveries.first() else {
            return;
        };
        let Ok(config) = self.config(&first.queue) else {
            out.extend(
                deliveries
                    .iter()
                    .map(|d| Err(Error::UnknownQueue(d.queue.to_string()))),
            );
            return;
        };
        let keys = self.keys(&first.queue);
        // (position in `out`, entry, consumer) of the deliveries that are ours.
        let mut acked = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            match &delivery.token {
                DeliveryToken::Redis { entry, consumer } => {
                    acked.push((out.len(), entry.as_str(), consumer.as_str()));
                    out.push(Ok(Disposition::Removed));
                }
                #[allow(unreachable_patterns)]
                _ => out.push(Err(Error::StaleDelivery)),
            }
        }
        if acked.is_empty() {
            return;
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (_, entry, _) in &acked {
            pipe.cmd("XACK").arg(&keys.stream).arg(GROUP).arg(*entry);
        }
        let xdel = pipe.cmd("XDEL").arg(&keys.stream);
        for (_, entry, _) in &acked {
            xdel.arg(*entry);
        }
        xdel.ignore();
        let mut conn = self.conn.clone();
        let reply: redis::RedisResult<Vec<i64>> = pipe.query_async(&mut conn).await;
        if config.get_prefetch().is_some() {
            for (_, entry, consumer) in &acked {
                self.held.release(&first.queue, consumer, entry);
            }
        }
        match reply {
            Ok(counts) if counts.len() == acked.len() => {
                for ((at, _, _), count) in acked.iter().zip(counts) {
                    if count == 0
                        && let Some(result) = out.get_mut(*at)
                    {
                        *result = Err(Error::StaleDelivery);
                    }
                }
            }
            Ok(_) => {
                for (at, _, _) in &acked {
                    if let Some(result) = out.get_mut(*at) {
                        *result = Err(malformed("XACK replies"));
                    }
                }
            }
            Err(e) => {
                for (at, _, _) in &acked {
                    if let Some(result) = out.get_mut(*at) {
                        *result = Err(backend(&e));
                    }
                }
            }
        }
    }

    /// Up to `max` dead letters of `queue`, oldest first, each with its stream entry id.
    async fn read_dead(
        &self,
        queue: &str,
        keys: &Keys,
        max: usize,
    ) -> Result<Vec<(String, DeadLetter)>> {
        let reply = self
            .query(
                redis::cmd("XRANGE")
                    .arg(&keys.dead)
                    .arg("-")
                    .arg("+")
                    .arg("COUNT")
                    .arg(max),
            )
            .await?;
        let mut out = Vec::new();
        for entry in entries(&reply)? {
            let envelope = Envelope::from_wire(&entry.headers, entry.payload)?;
            let letter = DeadLetter::from_stored(queue, envelope, entry_time(&entry.id));
            out.push((entry.id, letter));
        }
        Ok(out)
    }

    /// The key of a topic's set of bound queues. Queue keys are `<prefix><queue>:…` with a
    /// non-empty queue name without `:`, so `<prefix>:t:…` cannot collide with them.
    fn topic_key(&self, topic: &str) -> String {
        format!("{}:t:{topic}", self.prefix)
    }

    /// The prefix of reply lists, `<prefix>:r:`.
    fn reply_prefix(&self) -> String {
        format!("{}:r:", self.prefix)
    }

    /// A connection of our own for a blocking command, from the pool or new.
    async fn blocking_conn(&self) -> Result<MultiplexedConnection> {
        let pooled = lock(&self.blocking).pop();
        match pooled {
            Some(c) => Ok(c),
            None => self
                .client
                .get_multiplexed_async_connection_with_config(
                    &redis::AsyncConnectionConfig::new()
                        .set_connection_timeout(Some(RESPONSE_TIMEOUT))
                        .set_response_timeout(Some(RESPONSE_TIMEOUT)),
                )
                .await
                .map_err(|e| backend(&e)),
        }
    }

    fn keys(&self, queue: &str) -> Keys {
        let base = format!("{}{queue}", self.prefix);
        Keys {
            stream: format!("{base}:s"),
            retry: format!("{base}:d"),
            dead: format!("{base}:dl"),
        }
    }

    fn config(&self, queue: &str) -> Result<QueueConfig> {
        lock(&self.queues)
            .get(queue)
            .cloned()
            .ok_or_else(|| Error::UnknownQueue(queue.to_owned()))
    }

    async fn query(&self, cmd: &redis::Cmd) -> Result<Value> {
        let mut conn = self.conn.clone();
        cmd.query_async(&mut conn).await.map_err(|e| backend(&e))
    }

    async fn dead_letter_entry(
        &self,
        keys: &Keys,
        queue: &str,
        entry: Entry,
        mut envelope: Envelope,
        reason: String,
    ) -> Result<()> {
        let attempts = envelope.attempt();
        envelope.set_delivered_at(None);
        let letter = DeadLetter::new(queue, envelope, reason, attempts, SystemTime::now());
        let mut conn = self.conn.clone();
        let _: i64 = self
            .settle
            .key(&keys.stream)
            .key(&keys.retry)
            .key(&keys.dead)
            .arg(GROUP)
            .arg(&entry.id)
            .arg("dead")
            .arg(0)
            .arg(letter.envelope.to_wire_headers())
            .arg(letter.envelope.payload().as_ref())
            .invoke_async(&mut conn)
            .await
            .map_err(|e| backend(&e))?;
        Ok(())
    }

    /// Claims entries idle past the ack wait; dead-letters those past their last delivery.
    async fn claim_expired(
        &self,
        keys: &Keys,
        queue: &str,
        consumer: &str,
        config: &QueueConfig,
        max: usize,
    ) -> Result<Vec<Delivery>> {
        // Due retries move into the stream, then expired deliveries are claimed: one
        // round trip. (`EVAL` with the script's text: the server caches it by its hash.)
        let mut pipe = redis::pipe();
        pipe.cmd("EVAL")
            .arg(MOVE_DUE)
            .arg(2)
            .arg(&keys.retry)
            .arg(&keys.stream)
            .arg(now_ms())
            .arg(1000)
            .ignore()
            .cmd("XAUTOCLAIM")
            .arg(&keys.stream)
            .arg(GROUP)
            .arg(consumer)
            .arg(millis(config.get_ack_wait()))
            .arg("0-0")
            .arg("COUNT")
            .arg(max);
        let mut conn = self.conn.clone();
        let (reply,): (Value,) = pipe.query_async(&mut conn).await.map_err(|e| backend(&e))?;
        lock(&self.housekept).insert(queue.to_owned(), tokio::time::Instant::now());
        let Value::Array(parts) = reply else {
            return Err(malformed("XAUTOCLAIM"));
        };
        let claimed = entries(parts.get(1).unwrap_or(&Value::Nil))?;
        let mut out = Vec::new();
        for entry in claimed {
            let pending = self
                .query(
                    redis::cmd("XPENDING")
                        .arg(&keys.stream)
                        .arg(GROUP)
                        .arg(&entry.id)
                        .arg(&entry.id)
                        .arg(1),
                )
                .await?;
            let count = match &pending {
                Value::Array(rows) => match rows.first() {
                    Some(Value::Array(row)) => match row.get(3) {
                        Some(Value::Int(n)) => u32::try_from(*n).unwrap_or(u32::MAX),
                        _ => return Err(malformed("XPENDING row")),
                    },
                    _ => continue, // acked meanwhile
                },
                _ => return Err(malformed("XPENDING")),
            };
            let envelope = match Envelope::from_wire(&entry.headers, entry.payload.clone()) {
                Ok(e) => e,
                Err(e) => {
                    let stub = Envelope::new(entry.payload.clone());
                    self.dead_letter_entry(
                        keys,
                        queue,
                        entry,
                        stub,
                        format!("unreadable headers: {e}"),
                    )
                    .await?;
                    continue;
                }
            };
            let previous = envelope.attempt().saturating_add(count.saturating_sub(1));
            if let Disposition::DeadLetter { reason } = decide_expired(previous, config.get_retry())
            {
                let mut last = envelope;
                last.set_attempt(previous);
                self.dead_letter_entry(keys, queue, entry, last, reason)
                    .await?;
                continue;
            }
            out.push(self.delivery(queue, consumer, entry, envelope, previous.saturating_add(1)));
        }
        Ok(out)
    }

    fn delivery(
        &self,
        queue: &str,
        consumer: &str,
        entry: Entry,
        mut envelope: Envelope,
        attempt: u32,
    ) -> Delivery {
        envelope.set_attempt(attempt);
        envelope.set_delivered_at(Some(SystemTime::now()));
        Delivery {
            queue: queue.into(),
            envelope,
            token: DeliveryToken::Redis {
                entry: entry.id,
                consumer: consumer.to_owned(),
            },
        }
    }

    async fn read_new(
        &self,
        keys: &Keys,
        queue: &str,
        consumer: &str,
        max: usize,
        block: Duration,
    ) -> Result<Vec<Delivery>> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(max);
        let block_ms = millis(block);
        if block_ms > 0 {
            cmd.arg("BLOCK").arg(block_ms);
        }
        cmd.arg("STREAMS").arg(&keys.stream).arg(">");
        let reply = if block_ms > 0 {
            // A blocking read holds its connection: use one of our own, not the shared one.
            let mut conn = self.blocking_conn().await?;
            let reply = cmd.query_async(&mut conn).await.map_err(|e| backend(&e))?;
            lock(&self.blocking).push(conn);
            reply
        } else {
            self.query(&cmd).await?
        };
        // [[stream, [entries...]]] or nil
        let Value::Array(streams) = reply else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for stream in &streams {
            let Value::Array(pair) = stream else {
                return Err(malformed("XREADGROUP stream"));
            };
            for entry in entries(pair.get(1).unwrap_or(&Value::Nil))? {
                match Envelope::from_wire(&entry.headers, entry.payload.clone()) {
                    Ok(envelope) => {
                        let attempt = envelope.attempt().saturating_add(1);
                        out.push(self.delivery(queue, consumer, entry, envelope, attempt));
                    }
                    Err(e) => {
                        let stub = Envelope::new(entry.payload.clone());
                        self.dead_letter_entry(
                            keys,
                            queue,
                            entry,
                            stub,
                            format!("unreadable headers: {e}"),
                        )
                        .await?;
                    }
                }
            }
        }
        Ok(out)
    }
}

impl Broker for RedisBroker {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            publish_dedup: false,
            ordered_keys: false,
            ..Capabilities::all()
        }
    }

    async fn declare(&self, queue: &str, config: &QueueConfig) -> Result<()> {
        check_queue_name(queue)?;
        config.validate()?;
        let keys = self.keys(queue);
        let created = self
            .query(
                redis::cmd("XGROUP")
                    .arg("CREATE")
                    .arg(&keys.stream)
                    .arg(GROUP)
                    .arg("0")
                    .arg("MKSTREAM"),
            )
            .await;
        match created {
            Ok(_) => {}
            Err(Error::Backend { detail, .. }) if detail.contains("BUSYGROUP") => {}
            Err(e) => return Err(e),
        }
        lock(&self.queues).insert(queue.to_owned(), config.clone());
        Ok(())
    }

    async fn publish(&self, queue: &str, envelope: Envelope) -> Result<()> {
        self.config(queue)?;
        let keys = self.keys(queue);
        refuse_ordering_key("redis", &envelope)?;
        let mut envelope = envelope;
        envelope.set_attempt(0);
        self.query(
            redis::cmd("XADD")
                .arg(&keys.stream)
                .arg("*")
                .arg("h")
                .arg(envelope.to_wire_headers())
                .arg("p")
                .arg(envelope.payload().as_ref()),
        )
        .await?;
        Ok(())
    }

    /// One pipeline of `XADD`s: one round trip for the batch.
    async fn publish_batch(&self, queue: &str, envelopes: Vec<Envelope>) -> Result<()> {
        self.config(queue)?;
        let keys = self.keys(queue);
        for envelope in &envelopes {
            refuse_ordering_key("redis", envelope)?;
        }
        if envelopes.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for mut envelope in envelopes {
            envelope.set_attempt(0);
            pipe.cmd("XADD")
                .arg(&keys.stream)
                .arg("*")
                .arg("h")
                .arg(envelope.to_wire_headers())
                .arg("p")
                .arg(envelope.payload().as_ref())
                .ignore();
        }
        let mut conn = self.conn.clone();
        let () = pipe.query_async(&mut conn).await.map_err(|e| backend(&e))?;
        Ok(())
    }

    async fn fetch(
        &self,
        queue: &str,
        consumer: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>> {
        let config = self.config(queue)?;
        let keys = self.keys(queue);
        let start = tokio::time::Instant::now();
        let end = start.checked_add(wait).unwrap_or(start);
        let max = match config.get_prefetch() {
            Some(limit) => max.min(self.held.room(queue, consumer, limit, end).await),
            None => max,
        };
        if max == 0 {
            return Ok(Vec::new());
        }
        // The first round skips the retries and claims when they were looked at lately;
        // if it finds no new entry, the next round looks at them.
        let mut housekeeping = lock(&self.housekept)
            .get(queue)
            .is_none_or(|last| last.elapsed() >= HOUSEKEEPING_EVERY);
        loop {
            let mut out = if housekeeping {
                self.claim_expired(&keys, queue, consumer, &config, max)
                    .await?
            } else {
                Vec::new()
            };
            if out.len() < max {
                let left = end.saturating_duration_since(tokio::time::Instant::now());
                let block = if out.is_empty() && housekeeping {
                    left.min(BLOCK_SLICE)
                } else {
                    Duration::ZERO
                };
                out.extend(
                    self.read_new(&keys, queue, consumer, max - out.len(), block)
                        .await?,
                );
            }
            if !out.is_empty() || (housekeeping && tokio::time::Instant::now() >= end) {
                if config.get_prefetch().is_some() {
                    for d in &out {
                        if let DeliveryToken::Redis { entry, .. } = &d.token {
                            self.held
                                .hold(queue, consumer, entry, config.get_ack_wait());
                        }
                    }
                }
                return Ok(out);
            }
            housekeeping = true;
        }
    }

    async fn settle(&self, delivery: &Delivery, settlement: Settlement) -> Result<Disposition> {
        let DeliveryToken::Redis { entry, consumer } = &delivery.token else {
            return Err(Error::StaleDelivery);
        };
        let config = self.config(&delivery.queue)?;
        let keys = self.keys(&delivery.queue);
        let unit = lock(&self.jitter).next_unit();
        let attempt = delivery.envelope.attempt();
        let disposition = decide(&settlement, attempt, config.get_retry(), unit);
        let mut envelope = delivery.envelope.clone();
        envelope.set_delivered_at(None);
        let (mode, score, stored) = match &disposition {
            Disposition::Extended => {
                let reply = self
                    .query(
                        redis::cmd("XCLAIM")
                            .arg(&keys.stream)
                            .arg(GROUP)
                            .arg(consumer)
                            .arg(0)
                            .arg(entry)
                            .arg("JUSTID"),
                    )
                    .await?;
                return match reply {
                    Value::Array(ids) if !ids.is_empty() => {
                        if config.get_prefetch().is_some() {
                            let ack_wait = config.get_ack_wait();
                            self.held.hold(&delivery.queue, consumer, entry, ack_wait);
                        }
                        Ok(disposition)
                    }
                    _ => Err(Error::StaleDelivery),
                };
            }
            Disposition::Removed => ("ack", 0, envelope),
            Disposition::Retry { delay } => {
                ("retry", now_ms().saturating_add(millis(*delay)), envelope)
            }
            Disposition::DeadLetter { reason } => {
                let letter = DeadLetter::new(
                    &delivery.queue,
                    envelope,
                    reason.clone(),
                    attempt,
                    SystemTime::now(),
                );
                ("dead", 0, letter.envelope)
            }
        };
        let mut conn = self.conn.clone();
        let done: i64 = self
            .settle
            .key(&keys.stream)
            .key(&keys.retry)
            .key(&keys.dead)
            .arg(GROUP)
            .arg(entry)
            .arg(mode)
            .arg(score)
            .arg(stored.to_wire_headers())
            .arg(stored.payload().as_ref())
            .invoke_async(&mut conn)
            .await
            .map_err(|e| backend(&e))?;
        if config.get_prefetch().is_some() {
            self.held.release(&delivery.queue, consumer, entry);
        }
        if done == 0 {
            return Err(Error::StaleDelivery);
        }
        Ok(disposition)
    }

    /// Acks go in one atomic pipeline per queue (`MULTI`, an `XACK` per entry, one
    /// `XDEL` of them all, `EXEC`): one round trip, each entry's `XACK` telling whether it
    /// was still pending. Other settlements go one by one.
    async fn settle_batch(
        &self,
        deliveries: &[Delivery],
        settlement: Settlement,
    ) -> Vec<Result<Disposition>> {
        if settlement != Settlement::Ack {
            let mut out = Vec::with_capacity(deliveries.len());
            for delivery in deliveries {
                out.push(self.settle(delivery, settlement.clone()).await);
            }
            return out;
        }
        let mut out: Vec<Result<Disposition>> = Vec::with_capacity(deliveries.len());
        let mut rest = deliveries;
        while let Some(first) = rest.first() {
            let run = rest
                .iter()
                .position(|d| d.queue != first.queue)
                .unwrap_or(rest.len());
            let (same, after) = rest.split_at(run);
            rest = after;
            self.ack_all(same, &mut out).await;
        }
        out
    }

    async fn dead_letters(&self, queue: &str, max: usize) -> Result<Vec<DeadLetter>> {
        check_queue_name(queue)?;
        let keys = self.keys(queue);
        let stored = self.read_dead(queue, &keys, max).await?;
        Ok(stored.into_iter().map(|(_, letter)| letter).collect())
    }

    async fn redrive(&self, queue: &str, max: usize) -> Result<usize> {
        check_queue_name(queue)?;
        let keys = self.keys(queue);
        let mut moved = 0;
        for (id, letter) in self.read_dead(queue, &keys, max).await? {
            let envelope = letter.into_redriven();
            let mut conn = self.conn.clone();
            let done: i64 = self
                .redrive
                .key(&keys.dead)
                .key(&keys.stream)
                .arg(&id)
                .arg(envelope.to_wire_headers())
                .arg(envelope.payload().as_ref())
                .invoke_async(&mut conn)
                .await
                .map_err(|e| backend(&e))?;
            moved += usize::try_from(done).unwrap_or(0);
        }
        Ok(moved)
    }

    async fn bind(&self, topic: &str, queue: &str) -> Result<()> {
        check_queue_name(topic)?;
        self.config(queue)?;
        self.query(redis::cmd("SADD").arg(self.topic_key(topic)).arg(queue))
            .await?;
        Ok(())
    }

    async fn publish_topic(&self, topic: &str, envelope: Envelope) -> Result<()> {
        check_queue_name(topic)?;
        refuse_ordering_key("redis", &envelope)?;
        let mut envelope = envelope;
        envelope.set_attempt(0);
        let mut conn = self.conn.clone();
        let _: i64 = self
            .publish_topic
            .key(self.topic_key(topic))
            .arg(&self.prefix)
            .arg(envelope.to_wire_headers())
            .arg(envelope.payload().as_ref())
            .invoke_async(&mut conn)
            .await
            .map_err(|e| backend(&e))?;
        Ok(())
    }

    async fn request(
        &self,
        queue: &str,
        envelope: Envelope,
        timeout: Duration,
    ) -> Result<Envelope> {
        let key = format!("{}{}", self.reply_prefix(), crate::MessageId::new());
        let envelope = prepare_request(envelope, &key)?;
        self.publish(queue, envelope).await?;
        let start = tokio::time::Instant::now();
        let end = start.checked_add(timeout).unwrap_or(start);
        let mut conn = self.blocking_conn().await?;
        let mut reconnected = false;
        loop {
            let left = end.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                lock(&self.blocking).push(conn);
                return Err(Error::Timeout(timeout));
            }
            // Slices well under the connection's response timeout.
            let slice = left
                .min(Duration::from_millis(250))
                .max(Duration::from_millis(1));
            let reply: Value = match redis::cmd("BLPOP")
                .arg(&key)
                .arg(slice.as_secs_f64())
                .query_async(&mut conn)
                .await
            {
                Ok(reply) => reply,
                // A pooled connection does not reconnect: after a server restart it and
                // the others in the pool are dead. Drop them and wait on a new one, once
                // (the reply list outlives the restart with the server's persistence).
                Err(e) if !reconnected && (e.is_io_error() || e.is_connection_dropped()) => {
                    lock(&self.blocking).clear();
                    conn = self.blocking_conn().await?;
                    reconnected = true;
                    continue;
                }
                Err(e) => return Err(backend(&e)),
            };
            if let Value::Array(pair) = &reply
                && let Some(packed) = pair.get(1).and_then(bytes_of)
            {
                lock(&self.blocking).push(conn);
                return unpack(packed);
            }
        }
    }

    async fn reply(&self, request: &Delivery, response: Envelope) -> Result<()> {
        let (key, mut response) = prepare_reply(request, response)?;
        // Only our own reply lists: a reply-to from a message must not name any other key.
        let id = key.strip_prefix(&self.reply_prefix()).unwrap_or_default();
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            return Err(Error::InvalidHeader {
                name: "reply-to".into(),
                reason: "not a reply list of this broker's key prefix",
            });
        }
        response.set_published_at(SystemTime::now());
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("RPUSH")
            .arg(&key)
            .arg(pack(&response))
            .ignore()
            .cmd("EXPIRE")
            .arg(&key)
            .arg(REPLY_TTL_SECS)
            .ignore();
        let mut conn = self.conn.clone();
        let () = pipe.query_async(&mut conn).await.map_err(|e| backend(&e))?;
        Ok(())
    }

    async fn pending(&self, queue: &str) -> Result<usize> {
        check_queue_name(queue)?;
        let keys = self.keys(queue);
        let mut pipe = redis::pipe();
        pipe.cmd("XLEN")
            .arg(&keys.stream)
            .cmd("ZCARD")
            .arg(&keys.retry);
        let mut conn = self.conn.clone();
        let (stream, retry): (usize, usize) =
            pipe.query_async(&mut conn).await.map_err(|e| backend(&e))?;
        // Acked and dead-lettered entries are deleted from the stream.
        Ok(stream + retry)
    }
}

/// An envelope as one value: `<length of h>:<h><p>` (the retry set's format).
fn pack(envelope: &Envelope) -> Vec<u8> {
    let h = envelope.to_wire_headers();
    let p = envelope.payload();
    let mut out = Vec::with_capacity(h.len() + p.len() + 8);
    out.extend_from_slice(h.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(&h);
    out.extend_from_slice(p);
    out
}

fn unpack(packed: &[u8]) -> Result<Envelope> {
    let colon = packed
        .iter()
        .position(|b| *b == b':')
        .ok_or_else(|| malformed("packed envelope without length"))?;
    let len: usize = std::str::from_utf8(packed.get(..colon).unwrap_or_default())
        .ok()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| malformed("packed envelope length"))?;
    let rest = packed.get(colon + 1..).unwrap_or_default();
    let (Some(h), Some(p)) = (rest.get(..len), rest.get(len..)) else {
        return Err(malformed("packed envelope shorter than its length"));
    };
    Envelope::from_wire(h, Bytes::copy_from_slice(p))
}
