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
//!
//! Per-key ordering ([`ORDERING_KEY`](crate::ORDERING_KEY)): a message with a key goes to
//! the stream `<prefix><queue>:k:<p>` of its partition `p` (CRC-32 of the key modulo the
//! queue's partition count, [`RedisBroker::key_partitions`], 16 by default, fixed by the
//! first declaration in `<prefix><queue>:kn`), each with the consumer group `bk`. A
//! partition hands out one entry at a time under a lease `<prefix><queue>:kl:<p>` (`SET
//! NX PX` with the ack wait, in the fetch script): while the lease lives nothing else of
//! the partition goes out, in any process. An ack or a dead letter removes the entry and
//! the lease; a nack keeps the entry pending and sets the lease to expire after the retry
//! delay; once a lease has expired (a retry is due, or a consumer died) the partition's
//! pending entry is claimed (`XCLAIM`) before anything newer is read. Keys sharing a
//! partition wait for each other (as with Kafka's partitions). Keyless messages keep the
//! path above; the partitions are read only while their streams hold entries (checked
//! at most once a second per queue).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use redis::aio::{ConnectionManager, MultiplexedConnection};
use redis::{Script, Value};

use crate::broker::DeliveryToken;
use crate::held::Held;
use crate::ordering::{
    KeyedWatch, MAX_KEY_PARTITIONS, check_key_partitions, key_partition, ordering_key,
    refuse_ordering_key,
};
use crate::request_reply::{ReplyRoute, ReplyWaiters, prepare_reply, prepare_request};
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
/// a second): the client's defaults (1 s, 500 ms) leave too little room on a busy machine,
/// as when TLS handshakes hold up the shared connection.
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

/// KEYS: none (a script of one queue's keyed keys, all under ARGV[1]). ARGV: queue base,
/// partition count to record if none is. Creates the partitions' groups; returns the count.
const DECLARE_KEYED: &str = r"
redis.call('SET', ARGV[1] .. ':kn', ARGV[2], 'NX')
local n = tonumber(redis.call('GET', ARGV[1] .. ':kn'))
for p = 0, n - 1 do
  redis.pcall('XGROUP', 'CREATE', ARGV[1] .. ':k:' .. p, 'bk', '0', 'MKSTREAM')
end
return n
";

/// ARGV: queue base, partitions, first partition, budget, consumer, ack wait (ms). Takes
/// the lease of up to `budget` free partitions, each with its oldest pending entry (claimed)
/// or its next new one; returns `{partition, id, fields, deliveries}` per entry.
const FETCH_KEYED: &str = r"
local base, n, first, budget = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {}
for i = 0, n - 1 do
  if #out >= budget then break end
  local p = (first + i) % n
  local stream = base .. ':k:' .. p
  local lease = base .. ':kl:' .. p
  if redis.call('EXISTS', lease) == 0 then
    local entry, count = nil, 0
    local pending = redis.call('XPENDING', stream, 'bk', '-', '+', 1)
    if #pending > 0 then
      local claimed = redis.call('XCLAIM', stream, 'bk', ARGV[5], 0, pending[1][1])
      if claimed[1] then entry, count = claimed[1], pending[1][4] + 1 end
    else
      local read = redis.call('XREADGROUP', 'GROUP', 'bk', ARGV[5], 'COUNT', 1, 'STREAMS', stream, '>')
      if read and read[1] and read[1][2][1] then entry, count = read[1][2][1], 1 end
    end
    if entry then
      redis.call('SET', lease, entry[1], 'PX', ARGV[6])
      out[#out + 1] = {p, entry[1], entry[2], count}
    end
  end
end
return out
";

/// KEYS: partition stream, lease, dead stream. ARGV: group, entry id, mode, ms, h, p.
const SETTLE_KEYED: &str = r"
if ARGV[3] == 'extend' then
  if redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
  return 1
end
if ARGV[3] == 'retry' then
  if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1) == 0 then return 0 end
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[4])
  return 1
end
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
if ARGV[3] == 'dead' then
  redis.call('XADD', KEYS[3], '*', 'h', ARGV[5], 'p', ARGV[6])
end
if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
return 1
";

/// ARGV: queue base. The entries in the partitions' streams (those of `:kn` partitions).
const KEYED_LEN: &str = r"
local n = tonumber(redis.call('GET', ARGV[1] .. ':kn') or '0')
local total = 0
for p = 0, n - 1 do total = total + redis.call('XLEN', ARGV[1] .. ':k:' .. p) end
return total
";

/// A queue's keyed side, as this process knows it.
#[derive(Debug)]
struct Keyed {
    partitions: u32,
    /// Whether fetches read the partitions (they hold entries).
    watch: KeyedWatch,
    /// The next partition to look at first, going round.
    cursor: AtomicUsize,
    /// Fetch rounds so far, to alternate which kind (keyed or not) is read first.
    turn: AtomicUsize,
}

impl Keyed {
    fn new(partitions: u32) -> Self {
        Self {
            partitions,
            watch: KeyedWatch::new(),
            cursor: AtomicUsize::new(0),
            turn: AtomicUsize::new(0),
        }
    }
}

/// The stored form of a dead letter of `queue` (its headers carry reason and attempts).
fn dead_letter_of(queue: &str, mut envelope: Envelope, reason: String) -> Envelope {
    let attempts = envelope.attempt();
    envelope.set_delivered_at(None);
    DeadLetter::new(queue, envelope, reason, attempts, SystemTime::now()).envelope
}

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
    settle_keyed: Script,
    redrive: Script,
    publish_topic: Script,
    held: Held,
    /// Each declared queue's keyed side.
    keyed: Mutex<HashMap<String, Arc<Keyed>>>,
    /// Partitions of a queue declared from now on.
    key_partitions: u32,
    /// The handle's one reply list, `<prefix>:r:<id>`, made by the first request: each
    /// reply to one of its requests is pushed there as `<token>/<packed envelope>` (the
    /// request's `reply-to` is `<prefix>:r:<id>.<token>`), and one task pops them and hands
    /// each to the request waiting under its token. So a thousand requests in flight wait
    /// on one connection, not on a thousand blocking ones.
    replies: ReplyRoute<String, Result<Envelope>>,
}

impl std::fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBroker")
            .field("prefix", &self.prefix)
            .field("replies", &self.replies.waiters())
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

/// The timeouts of a connection of our own (the connection manager sets the same).
fn connection_config() -> redis::AsyncConnectionConfig {
    redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(RESPONSE_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
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
    /// `<prefix><queue>`.
    base: String,
    stream: String,
    retry: String,
    dead: String,
}

impl RedisBroker {
    /// The partitions a queue spreads its keyed messages over unless
    /// [`key_partitions`](Self::key_partitions) says otherwise.
    pub const DEFAULT_KEY_PARTITIONS: u32 = 16;

    /// Connects to `url` (`redis://host:port/db`); every key starts with `prefix`
    /// (give each application, or each test, its own).
    ///
    /// # Errors
    /// [`Error::Backend`] when the URL is invalid or the server cannot be reached (a
    /// refused connection at once, an unanswered one after 5 s).
    pub async fn connect(url: &str, prefix: &str) -> Result<Self> {
        let client = open_client(url)?;
        // One attempt first, so that a server that is not there fails the call at once:
        // the connection manager retries a failed connect with backoff (six times, about
        // 6 s in all), which is right for reconnecting, not for a wrong URL. The
        // connection serves the blocking reads afterwards.
        let first = client
            .get_multiplexed_async_connection_with_config(&connection_config())
            .await
            .map_err(|e| backend(&e))?;
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
            blocking: Mutex::new(vec![first]),
            prefix: prefix.to_owned(),
            queues: Mutex::new(HashMap::new()),
            housekept: Mutex::new(HashMap::new()),
            jitter: Mutex::new(JitterSource::from_entropy()),
            settle: Script::new(SETTLE),
            settle_keyed: Script::new(SETTLE_KEYED),
            redrive: Script::new(REDRIVE),
            publish_topic: Script::new(PUBLISH_TOPIC),
            held: Held::default(),
            keyed: Mutex::new(HashMap::new()),
            key_partitions: Self::DEFAULT_KEY_PARTITIONS,
            replies: ReplyRoute::default(),
        })
    }

    /// How many partitions a queue declared from now on spreads its keyed messages over
    /// (1 to 256; [`Self::DEFAULT_KEY_PARTITIONS`] by default). Messages whose keys share
    /// a partition are handed out one at a time. The first declaration of a queue fixes
    /// its count (every process must place a key alike): a queue that exists keeps it.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] outside 1 to 256.
    pub fn key_partitions(mut self, partitions: u32) -> Result<Self> {
        self.key_partitions = check_key_partitions(partitions)?;
        Ok(self)
    }

    fn keyed_side(&self, queue: &str) -> Result<Arc<Keyed>> {
        lock(&self.keyed)
            .get(queue)
            .map(Arc::clone)
            .ok_or_else(|| Error::UnknownQueue(queue.to_owned()))
    }

    /// The stream `envelope` goes to: its key's partition, or the queue's.
    fn stream_for<'k>(
        &self,
        queue: &str,
        keys: &'k Keys,
        envelope: &Envelope,
    ) -> Result<Cow<'k, str>> {
        match ordering_key(envelope) {
            None => Ok(Cow::Borrowed(&keys.stream)),
            Some(key) => {
                let keyed = self.keyed_side(queue)?;
                keyed.watch.published();
                let partition = key_partition(key, keyed.partitions);
                Ok(Cow::Owned(format!("{}:k:{partition}", keys.base)))
            }
        }
    }

    /// Whether the partitions need reading: they held entries when last checked (at most
    /// [`KEYED_CHECK`](crate::ordering::KEYED_CHECK) ago), or this handle published a
    /// keyed message since.
    async fn keyed_waiting(&self, keyed: &Keyed, keys: &Keys) -> Result<bool> {
        keyed
            .watch
            .waiting(|| async {
                let holds: i64 = self
                    .query_as(redis::cmd("EVAL").arg(KEYED_LEN).arg(0).arg(&keys.base))
                    .await?;
                Ok::<bool, Error>(holds > 0)
            })
            .await
    }

    async fn query_as<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T> {
        let mut conn = self.conn.clone();
        cmd.query_async(&mut conn).await.map_err(|e| backend(&e))
    }

    /// Up to `budget` keyed messages, one per free partition (a pending one first).
    async fn fetch_keyed(
        &self,
        keyed: &Keyed,
        keys: &Keys,
        queue: &str,
        consumer: &str,
        config: &QueueConfig,
        budget: usize,
    ) -> Result<Vec<Delivery>> {
        let first = keyed.cursor.fetch_add(1, Ordering::Relaxed);
        let partitions = usize::try_from(keyed.partitions).unwrap_or(1).max(1);
        let reply: Value = self
            .query_as(
                redis::cmd("EVAL")
                    .arg(FETCH_KEYED)
                    .arg(0)
                    .arg(&keys.base)
                    .arg(keyed.partitions)
                    .arg(first % partitions)
                    .arg(budget)
                    .arg(consumer)
                    .arg(millis(config.get_ack_wait()).max(1)),
            )
            .await?;
        let Value::Array(items) = reply else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for item in items {
            let Value::Array(parts) = item else {
                return Err(malformed("keyed fetch item"));
            };
            let (Some(Value::Int(partition)), Some(id), Some(fields), Some(Value::Int(count))) =
                (parts.first(), parts.get(1), parts.get(2), parts.get(3))
            else {
                return Err(malformed("keyed fetch item"));
            };
            let partition = u32::try_from(*partition).map_err(|_| malformed("partition"))?;
            let count = u32::try_from(*count).unwrap_or(u32::MAX);
            let Some(entry) = entries(&Value::Array(vec![Value::Array(vec![
                id.clone(),
                fields.clone(),
            ])]))?
            .pop() else {
                continue;
            };
            let envelope = match Envelope::from_wire(&entry.headers, entry.payload.clone()) {
                Ok(e) => e,
                Err(e) => {
                    let stub = Envelope::new(entry.payload.clone());
                    self.settle_entry(
                        keys,
                        Some(partition),
                        &entry.id,
                        "dead",
                        0,
                        &dead_letter_of(queue, stub, format!("unreadable headers: {e}")),
                    )
                    .await?;
                    continue;
                }
            };
            let previous = envelope.attempt().saturating_add(count.saturating_sub(1));
            if count > 1
                && let Disposition::DeadLetter { reason } =
                    decide_expired(previous, config.get_retry())
            {
                let mut last = envelope;
                last.set_attempt(previous);
                self.settle_entry(
                    keys,
                    Some(partition),
                    &entry.id,
                    "dead",
                    0,
                    &dead_letter_of(queue, last, reason),
                )
                .await?;
                continue;
            }
            let mut delivery =
                self.delivery(queue, consumer, entry, envelope, previous.saturating_add(1));
            if let DeliveryToken::Redis { partition: p, .. } = &mut delivery.token {
                *p = Some(partition);
            }
            out.push(delivery);
        }
        Ok(out)
    }

    /// Settles one entry with a script: [`SETTLE`] on the queue's stream and retry set,
    /// or [`SETTLE_KEYED`] on the stream and lease of partition `partition`. The ARGV are
    /// the same: the group, `entry`, `mode`, `n` (the retry's due time in milliseconds
    /// for [`SETTLE`], a lease time for [`SETTLE_KEYED`]) and the envelope to store (for
    /// a retry or a dead letter). Whether the entry was still there.
    async fn settle_entry(
        &self,
        keys: &Keys,
        partition: Option<u32>,
        entry: &str,
        mode: &str,
        n: u64,
        stored: &Envelope,
    ) -> Result<bool> {
        let mut invocation = match partition {
            None => {
                let mut invocation = self.settle.prepare_invoke();
                invocation.key(&keys.stream).key(&keys.retry);
                invocation
            }
            Some(p) => {
                let mut invocation = self.settle_keyed.prepare_invoke();
                invocation
                    .key(format!("{}:k:{p}", keys.base))
                    .key(format!("{}:kl:{p}", keys.base));
                invocation
            }
        };
        invocation
            .key(&keys.dead)
            .arg(GROUP)
            .arg(entry)
            .arg(mode)
            .arg(n)
            .arg(stored.to_wire_headers())
            .arg(stored.payload().as_ref());
        let mut conn = self.conn.clone();
        let done: i64 = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(|e| backend(&e))?;
        Ok(done != 0)
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
                DeliveryToken::Redis {
                    entry,
                    consumer,
                    partition: None,
                } => {
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

    /// This handle's reply list and the requests waiting on it; the first request makes
    /// the list's key and starts the task that pops it ([`route_replies`]).
    async fn reply_list(&self) -> Result<(Arc<str>, Arc<ReplyWaiters<String, Result<Envelope>>>)> {
        self.replies
            .get_or_make(|waiters, stopped| async move {
                let conn = self.blocking_conn().await?;
                let key: Arc<str> =
                    format!("{}{}", self.reply_prefix(), crate::MessageId::new()).into();
                tokio::spawn(route_replies(
                    self.client.clone(),
                    conn,
                    Arc::clone(&key),
                    waiters,
                    stopped,
                ));
                Ok(key)
            })
            .await
    }

    /// Requests waiting for a reply now.
    #[cfg(test)]
    fn waiting_requests(&self) -> usize {
        self.replies.waiters().map_or(0, |waiters| waiters.len())
    }

    /// A connection of our own for a blocking command, from the pool or new.
    async fn blocking_conn(&self) -> Result<MultiplexedConnection> {
        let pooled = lock(&self.blocking).pop();
        match pooled {
            Some(c) => Ok(c),
            None => self
                .client
                .get_multiplexed_async_connection_with_config(&connection_config())
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
            base,
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
        self.settle_entry(keys, None, &entry.id, "dead", 0, &letter.envelope)
            .await?;
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

    /// Settles a keyed delivery with [`SETTLE_KEYED`]: the partition's lease goes with
    /// an ack or a dead letter, lives on until the retry is due after a nack, and is
    /// extended by [`Settlement::InProgress`].
    async fn settle_keyed(
        &self,
        delivery: &Delivery,
        entry: &str,
        consumer: &str,
        partition: u32,
        settlement: &Settlement,
    ) -> Result<Disposition> {
        let config = self.config(&delivery.queue)?;
        let keys = self.keys(&delivery.queue);
        let unit = lock(&self.jitter).next_unit();
        let attempt = delivery.envelope.attempt();
        let disposition = decide(settlement, attempt, config.get_retry(), unit);
        let mut stored = delivery.envelope.clone();
        let (mode, ms) = match &disposition {
            Disposition::Extended => ("extend", millis(config.get_ack_wait()).max(1)),
            Disposition::Removed => ("ack", 0),
            Disposition::Retry { delay } => ("retry", millis(*delay).max(1)),
            Disposition::DeadLetter { reason } => {
                stored = dead_letter_of(&delivery.queue, stored, reason.clone());
                ("dead", 0)
            }
        };
        let done = self
            .settle_entry(&keys, Some(partition), entry, mode, ms, &stored)
            .await?;
        if config.get_prefetch().is_some() {
            if disposition == Disposition::Extended {
                let ack_wait = config.get_ack_wait();
                self.held.hold(&delivery.queue, consumer, entry, ack_wait);
            } else {
                self.held.release(&delivery.queue, consumer, entry);
            }
        }
        if !done {
            return Err(Error::StaleDelivery);
        }
        Ok(disposition)
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
                partition: None,
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
        let partitions: i64 = self
            .query_as(
                redis::cmd("EVAL")
                    .arg(DECLARE_KEYED)
                    .arg(0)
                    .arg(&keys.base)
                    .arg(self.key_partitions),
            )
            .await?;
        let partitions = u32::try_from(partitions)
            .ok()
            .filter(|n| (1..=MAX_KEY_PARTITIONS).contains(n))
            .ok_or_else(|| malformed("key partition count"))?;
        lock(&self.keyed)
            .entry(queue.to_owned())
            .and_modify(|k| {
                if k.partitions != partitions {
                    *k = Arc::new(Keyed::new(partitions));
                }
            })
            .or_insert_with(|| Arc::new(Keyed::new(partitions)));
        lock(&self.queues).insert(queue.to_owned(), config.clone());
        Ok(())
    }

    async fn publish(&self, queue: &str, envelope: Envelope) -> Result<()> {
        self.config(queue)?;
        let keys = self.keys(queue);
        let stream = self.stream_for(queue, &keys, &envelope)?;
        let mut envelope = envelope;
        envelope.set_attempt(0);
        self.query(
            redis::cmd("XADD")
                .arg(&*stream)
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
        if envelopes.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for mut envelope in envelopes {
            envelope.set_attempt(0);
            let stream = self.stream_for(queue, &keys, &envelope)?;
            pipe.cmd("XADD")
                .arg(&*stream)
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
        let keyed = self.keyed_side(queue)?;
        loop {
            // While the partitions hold messages, each round reads them too (so also
            // between the blocking slices): first or last by turns, so that neither kind
            // starves the other.
            let keyed_active = self.keyed_waiting(&keyed, &keys).await?;
            let keyed_first =
                keyed_active && keyed.turn.fetch_add(1, Ordering::Relaxed).is_multiple_of(2);
            let mut out = if keyed_first {
                self.fetch_keyed(&keyed, &keys, queue, consumer, &config, max)
                    .await?
            } else {
                Vec::new()
            };
            if housekeeping && out.len() < max {
                out.extend(
                    self.claim_expired(&keys, queue, consumer, &config, max - out.len())
                        .await?,
                );
            }
            let keyed_last = keyed_active && !keyed_first;
            if out.len() < max {
                let left = end.saturating_duration_since(tokio::time::Instant::now());
                // Not before the partitions were read this round.
                let block = if out.is_empty() && housekeeping && !keyed_last {
                    left.min(BLOCK_SLICE)
                } else {
                    Duration::ZERO
                };
                out.extend(
                    self.read_new(&keys, queue, consumer, max - out.len(), block)
                        .await?,
                );
            }
            if keyed_last && out.len() < max {
                out.extend(
                    self.fetch_keyed(&keyed, &keys, queue, consumer, &config, max - out.len())
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
        let DeliveryToken::Redis {
            entry,
            consumer,
            partition,
        } = &delivery.token
        else {
            return Err(Error::StaleDelivery);
        };
        if let Some(partition) = *partition {
            return self
                .settle_keyed(delivery, entry, consumer, partition, &settlement)
                .await;
        }
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
        let done = self
            .settle_entry(&keys, None, entry, mode, score, &stored)
            .await?;
        if config.get_prefetch().is_some() {
            self.held.release(&delivery.queue, consumer, entry);
        }
        if !done {
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
        let keyed = |d: &Delivery| {
            matches!(
                d.token,
                DeliveryToken::Redis {
                    partition: Some(_),
                    ..
                }
            )
        };
        if settlement != Settlement::Ack || deliveries.iter().any(keyed) {
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
            let stream = self.stream_for(queue, &keys, &envelope)?;
            let mut conn = self.conn.clone();
            let done: i64 = self
                .redrive
                .key(&keys.dead)
                .key(&*stream)
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
        let (list, waiters) = self.reply_list().await?;
        let token = crate::MessageId::new().to_string();
        let waiter = waiters.register(token.clone());
        let envelope = prepare_request(envelope, &format!("{list}.{token}"))?;
        self.publish(queue, envelope).await?;
        waiter.wait(timeout).await?
    }

    async fn reply(&self, request: &Delivery, response: Envelope) -> Result<()> {
        let (reply_to, mut response) = prepare_reply(request, response)?;
        // Only our own reply lists: a reply-to from a message must not name any other key.
        let prefix = self.reply_prefix();
        let Some((list, token)) = reply_to
            .strip_prefix(&prefix)
            .and_then(|rest| rest.split_once('.'))
            .filter(|(list, token)| is_reply_id(list) && is_reply_id(token))
        else {
            return Err(Error::InvalidHeader {
                name: "reply-to".into(),
                reason: "not a reply list of this broker's key prefix",
            });
        };
        response.set_published_at(SystemTime::now());
        let key = format!("{prefix}{list}");
        let mut item = Vec::with_capacity(token.len() + 1);
        item.extend_from_slice(token.as_bytes());
        item.push(b'/');
        item.extend_from_slice(&pack(&response));
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("RPUSH")
            .arg(&key)
            .arg(item)
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
            .arg(&keys.retry)
            .cmd("EVAL")
            .arg(KEYED_LEN)
            .arg(0)
            .arg(&keys.base);
        let mut conn = self.conn.clone();
        let (stream, retry, keyed): (usize, usize, usize) =
            pipe.query_async(&mut conn).await.map_err(|e| backend(&e))?;
        // Acked and dead-lettered entries are deleted from the streams.
        Ok(stream + retry + keyed)
    }
}

/// The longest blocking pop of the reply task, well under [`RESPONSE_TIMEOUT`].
const REPLY_SLICE: Duration = Duration::from_secs(1);
/// The most replies the reply task takes in one `LPOP`.
const REPLY_BATCH: usize = 128;

/// Pops the replies pushed to `key` and hands each to the request waiting under its
/// token, until `stop` ends (the handle is dropped). A failed connection (a server
/// restart) is replaced, after a pause that grows to a second; the list itself outlives a
/// restart with the server's persistence, so a request waiting through it still gets its
/// reply.
async fn route_replies(
    client: redis::Client,
    conn: MultiplexedConnection,
    key: Arc<str>,
    waiters: Arc<ReplyWaiters<String, Result<Envelope>>>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    /// Closes the waiters however the task ends, dropped with its runtime included: the
    /// requests waiting fail at once, and the next request makes a new list and task.
    struct CloseOnEnd(Arc<ReplyWaiters<String, Result<Envelope>>>);
    impl Drop for CloseOnEnd {
        fn drop(&mut self) {
            self.0.close();
        }
    }
    let _close = CloseOnEnd(Arc::clone(&waiters));
    const FIRST_PAUSE: Duration = Duration::from_millis(50);
    let config = connection_config();
    let mut conn = Some(conn);
    let mut pause = FIRST_PAUSE;
    // After a reply, what else came meanwhile is taken in one `LPOP key count` (Redis
    // 6.2, as `XAUTOCLAIM`) until the list is empty, so that many replies do not each wait
    // for a round trip of their own; then the task blocks again.
    let mut draining = false;
    loop {
        let Some(live) = conn.as_mut() else {
            // A pause before each new connection (growing to a second while they fail),
            // so that a server that is down or refuses the commands is not asked again in
            // a tight loop.
            tokio::select! {
                _ = &mut stop => return,
                () = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(Duration::from_secs(1));
            let connect = client.get_multiplexed_async_connection_with_config(&config);
            tokio::select! {
                _ = &mut stop => return,
                made = connect => conn = made.ok(),
            }
            continue;
        };
        let pop = if draining {
            let mut pop = redis::cmd("LPOP");
            pop.arg(&*key).arg(REPLY_BATCH);
            pop
        } else {
            let mut pop = redis::cmd("BLPOP");
            pop.arg(&*key).arg(REPLY_SLICE.as_secs_f64());
            pop
        };
        let popped = tokio::select! {
            _ = &mut stop => return,
            popped = pop.query_async::<Value>(live) => popped,
        };
        match popped {
            // BLPOP: `[key, item]`; LPOP with a count: `[item, ...]`.
            Ok(Value::Array(items)) => {
                pause = FIRST_PAUSE;
                let (items, more) = if draining {
                    // Fewer than asked for: the list is empty now.
                    (items.as_slice(), items.len() >= REPLY_BATCH)
                } else {
                    (items.get(1..2).unwrap_or_default(), true)
                };
                for item in items.iter().filter_map(bytes_of) {
                    route_reply(&waiters, item);
                }
                draining = more && !items.is_empty();
            }
            // The slice ended without a reply, or the list is empty.
            Ok(_) => {
                pause = FIRST_PAUSE;
                draining = false;
            }
            Err(_) => {
                conn = None;
                draining = false;
            }
        }
    }
}

/// Hands one popped `<token>/<packed envelope>` to its request; one without a waiting
/// request (it timed out) or without a token is dropped.
fn route_reply(waiters: &ReplyWaiters<String, Result<Envelope>>, item: &[u8]) {
    let Some(slash) = item.iter().position(|b| *b == b'/') else {
        return;
    };
    let (Some(token), Some(packed)) = (item.get(..slash), item.get(slash + 1..)) else {
        return;
    };
    if let Ok(token) = std::str::from_utf8(token) {
        waiters.deliver(token, unpack(packed));
    }
}

/// Whether `id` can be a reply list's id or a request's token (a hyphenated UUID).
fn is_reply_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[tokio::test]
    async fn a_refused_connect_fails_at_once() {
        // A port nothing listens on: bound, then freed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let start = std::time::Instant::now();
        let outcome = RedisBroker::connect(&format!("redis://127.0.0.1:{port}"), "refused").await;
        assert!(matches!(outcome, Err(Error::Backend { .. })), "{outcome:?}");
        // The connection manager's retries alone take over 6 s (0.1 + 0.2 + ... + 3.2 s).
        let took = start.elapsed();
        assert!(took < Duration::from_secs(3), "took {took:?}");
    }

    async fn broker(test: &str) -> Option<RedisBroker> {
        let Ok(url) = std::env::var("REDIS_URL") else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "REDIS_URL must be set under CI=true"
            );
            println!("skipped: REDIS_URL is not set");
            return None;
        };
        let prefix = format!("{test}_{}_{}", std::process::id(), crate::MessageId::new());
        let broker = RedisBroker::connect(&url, &prefix).await.unwrap();
        broker.declare("rr", &QueueConfig::default()).await.unwrap();
        Some(broker)
    }

    #[tokio::test]
    async fn requests_in_flight_share_one_reply_list_and_connection() {
        let Some(broker) = broker("rr_shared").await else {
            return;
        };
        let broker = Arc::new(broker);
        const IN_FLIGHT: usize = 100;
        let requests: Vec<_> = (0..IN_FLIGHT)
            .map(|i| {
                let broker = Arc::clone(&broker);
                tokio::spawn(async move {
                    broker
                        .request(
                            "rr",
                            Envelope::new(format!("q{i}")),
                            Duration::from_secs(20),
                        )
                        .await
                })
            })
            .collect();
        let requesters = async {
            let mut answers = Vec::new();
            for request in requests {
                answers.push(request.await.unwrap());
            }
            answers
        };
        let responder = async {
            let mut reply_tos = Vec::new();
            while reply_tos.len() < IN_FLIGHT {
                let batch = broker
                    .fetch("rr", "responder", 64, Duration::from_secs(5))
                    .await
                    .unwrap();
                assert!(!batch.is_empty(), "every request arrives");
                // Answered in reverse, so replies come back in another order.
                for d in batch.iter().rev() {
                    let mut answer = b"re:".to_vec();
                    answer.extend_from_slice(d.envelope.payload());
                    broker.reply(d, Envelope::new(answer)).await.unwrap();
                    broker.settle(d, Settlement::Ack).await.unwrap();
                    reply_tos.push(d.envelope.headers().reply_to().unwrap().to_owned());
                }
            }
            reply_tos
        };
        let (answers, reply_tos) = tokio::join!(requesters, responder);
        for (i, answer) in answers.into_iter().enumerate() {
            assert_eq!(
                answer.unwrap().payload().as_ref(),
                format!("re:q{i}").as_bytes()
            );
        }
        let lists: std::collections::HashSet<_> = reply_tos
            .iter()
            .map(|r| r.rsplit_once('.').unwrap().0)
            .collect();
        assert_eq!(lists.len(), 1, "one reply list for all: {lists:?}");
        let tokens: std::collections::HashSet<_> = reply_tos.iter().collect();
        assert_eq!(
            tokens.len(),
            IN_FLIGHT,
            "a token of its own for each request"
        );
        assert_eq!(broker.waiting_requests(), 0);
        // The fetches and the reply task took one connection each, where a blocking pop
        // per request took one per request in flight.
        assert!(
            lock(&broker.blocking).len() <= 1,
            "{}",
            lock(&broker.blocking).len()
        );

        // A late reply reaches nobody; the next request gets its own.
        let outcome = broker
            .request("rr", Envelope::new("late"), Duration::from_millis(200))
            .await;
        assert!(matches!(outcome, Err(Error::Timeout(_))), "{outcome:?}");
        let late = broker
            .fetch("rr", "responder", 1, Duration::from_secs(5))
            .await
            .unwrap();
        broker
            .reply(&late[0], Envelope::new("too late"))
            .await
            .unwrap();
        broker.settle(&late[0], Settlement::Ack).await.unwrap();
        let requester = broker.request("rr", Envelope::new("next"), Duration::from_secs(5));
        let responder = async {
            let d = broker
                .fetch("rr", "responder", 1, Duration::from_secs(5))
                .await
                .unwrap();
            broker.reply(&d[0], Envelope::new("on time")).await.unwrap();
            broker.settle(&d[0], Settlement::Ack).await.unwrap();
        };
        let (answer, ()) = tokio::join!(requester, responder);
        assert_eq!(answer.unwrap().payload().as_ref(), b"on time");

        // The task ends (here: its handle lets go of it): waiting requests fail at once,
        // and the next request makes a new list.
        let (_, old_waiters) = broker.reply_list().await.unwrap();
        broker.replies.drop_route();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(old_waiters.is_closed());
        let started = tokio::time::Instant::now();
        let outcome = old_waiters
            .register("late".to_owned())
            .wait(Duration::from_secs(30))
            .await;
        assert!(matches!(outcome, Err(Error::Timeout(_))), "{outcome:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        let requester = broker.request("rr", Envelope::new("again"), Duration::from_secs(5));
        let responder = async {
            let d = broker
                .fetch("rr", "responder", 1, Duration::from_secs(5))
                .await
                .unwrap();
            broker
                .reply(&d[0], Envelope::new("new list"))
                .await
                .unwrap();
            broker.settle(&d[0], Settlement::Ack).await.unwrap();
            d[0].envelope.headers().reply_to().unwrap().to_owned()
        };
        let (answer, reply_to) = tokio::join!(requester, responder);
        assert_eq!(answer.unwrap().payload().as_ref(), b"new list");
        assert!(!lists.contains(reply_to.rsplit_once('.').unwrap().0));

        // Replies only to our own reply lists, with a token.
        let mut forged = Envelope::new("forged");
        let list = reply_tos[0].rsplit_once('.').unwrap().0.to_owned();
        for reply_to in [list.clone(), format!("{list}."), "other:r:1.2".to_owned()] {
            forged
                .headers_mut()
                .insert("reply-to", reply_to.as_str())
                .unwrap();
            broker.publish("rr", forged.clone()).await.unwrap();
            let d = broker
                .fetch("rr", "responder", 1, Duration::from_secs(5))
                .await
                .unwrap();
            let outcome = broker.reply(&d[0], Envelope::new("x")).await;
            assert!(
                matches!(outcome, Err(Error::InvalidHeader { .. })),
                "{reply_to}: {outcome:?}"
            );
            broker.settle(&d[0], Settlement::Ack).await.unwrap();
        }
    }

    #[test]
    fn a_reply_goes_to_its_token_and_malformed_ones_are_dropped() {
        let waiters: ReplyWaiters<String, Result<Envelope>> = ReplyWaiters::default();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let good = waiters.register("a-1".to_owned());
        let bad = waiters.register("b-2".to_owned());
        let mut item = b"a-1/".to_vec();
        item.extend_from_slice(&pack(&Envelope::new("hello")));
        route_reply(&waiters, &item);
        route_reply(&waiters, b"no token at all");
        route_reply(&waiters, b"b-2/9:short");
        let got = runtime.block_on(good.wait(Duration::from_secs(1))).unwrap();
        assert_eq!(got.unwrap().payload().as_ref(), b"hello");
        let got = runtime.block_on(bad.wait(Duration::from_secs(1))).unwrap();
        assert!(matches!(got, Err(Error::Backend { .. })), "{got:?}");
        assert_eq!(waiters.len(), 0);
    }
}
