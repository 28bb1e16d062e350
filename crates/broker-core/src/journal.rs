//! The embedded broker's journal: an append-only log on disk that makes
//! [`EmbeddedBroker::open`](crate::EmbeddedBroker::open) durable. The sans-IO core
//! ([`QueueCore`](crate::QueueCore)) knows nothing of it: the broker writes a record for
//! each change it makes to a queue and, when it opens, replays the log into new cores.
//!
//! The file (`journal.bkj` in the broker's directory) is an 8-byte magic and a sequence
//! of frames: the body's length (`u32`, little-endian), a CRC-32 of those four bytes, a
//! CRC-32 of the body, the body. A frame that ends the file and is incomplete or fails
//! its checksum is a write torn by a crash: it is dropped and the file truncated to the
//! last good frame. A bad frame followed by more data is [`Error::JournalCorrupt`].
//!
//! Records: a queue declared (with its configuration), a topic bound, a message published
//! (id, headers, payload, publication time), delivered (its attempt number), acked,
//! dead-lettered (reason, attempts, time), re-driven. Messages are told apart by queue and
//! id.
//!
//! ```
//! use broker_core::{Broker, EmbeddedBroker, Envelope, JournalOptions, QueueConfig, SyncPolicy};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let dir = std::env::temp_dir().join(format!("bk-journal-doc-{}", std::process::id()));
//! # let _ = std::fs::remove_dir_all(&dir);
//! let broker = EmbeddedBroker::open_with(JournalOptions::new(&dir).sync(SyncPolicy::Batch))?;
//! broker.declare("jobs", &QueueConfig::default()).await?;
//! broker.publish_batch("jobs", vec![Envelope::new("a"), Envelope::new("b")]).await?;
//! drop(broker);
//!
//! // A restart: the queue and both messages are back.
//! let broker = EmbeddedBroker::open(&dir)?;
//! assert_eq!(broker.pending("jobs").await?, 2);
//! # drop(broker);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), broker_core::Error>(())
//! # }).unwrap();
//! ```

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::envelope::unix_millis;
use crate::{
    DeadLetter, Disposition, Envelope, Error, MessageId, QueueConfig, Result, RetryPolicy,
    decide_expired,
};

const MAGIC: &[u8; 8] = b"BKJRNL01";
const FILE_NAME: &str = "journal.bkj";
const TEMP_NAME: &str = "journal.bkj.compact";
const FRAME_HEADER: usize = 12;

const DECLARE: u8 = 1;
const BIND: u8 = 2;
const PUBLISH: u8 = 3;
const DELIVERED: u8 = 4;
const ACK: u8 = 5;
const DEAD: u8 = 6;
const REDRIVEN: u8 = 7;

/// When the journal is flushed to stable storage (`fsync`, as `File::sync_data`).
///
/// Every call that changes a queue writes its records to the file (the operating system)
/// before it returns, so a crash of the process loses nothing that returned `Ok`. The
/// policy decides what survives a crash of the machine (power loss, kernel panic).
/// Concurrent callers share one `fsync` (group commit). A fetch's delivery records (the
/// attempt counts) are written but never wait for an `fsync` of their own; the next one
/// covers them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyncPolicy {
    /// `publish`, `publish_batch`, `settle`, `settle_batch`, `redrive`, `declare` and
    /// `bind` return after their records are on stable storage (a batch call: one `fsync`
    /// for the batch).
    #[default]
    Always,
    /// Only the batch calls (`publish_batch`, `settle_batch`) and `declare`, `bind`,
    /// `redrive` wait for an `fsync` at their end; single `publish` and `settle` are written
    /// to the file only (lost on power loss until the next `fsync`).
    Batch,
    /// Never wait for an `fsync` (the operating system writes back when it likes); only
    /// [`EmbeddedBroker::sync`](crate::EmbeddedBroker::sync), compaction and dropping the
    /// broker do one.
    Never,
}

/// Where and how the embedded broker keeps its journal.
#[derive(Clone, Debug)]
pub struct JournalOptions {
    pub(crate) dir: PathBuf,
    pub(crate) sync: SyncPolicy,
    pub(crate) compact_min_bytes: u64,
}

impl JournalOptions {
    /// The journal in `dir` (created if missing), [`SyncPolicy::Always`], compaction from
    /// 64 MiB.
    pub fn new(dir: impl AsRef<Path>) -> Self {
        Self {
            dir: dir.as_ref().to_path_buf(),
            sync: SyncPolicy::Always,
            compact_min_bytes: 64 << 20,
        }
    }

    /// The `fsync` policy.
    #[must_use]
    pub fn sync(mut self, sync: SyncPolicy) -> Self {
        self.sync = sync;
        self
    }

    /// The smallest file that is compacted on its own: the journal is rewritten with only
    /// the live messages when it is at least this large, twice as large as after the last
    /// compaction, and fewer than half of the messages published into it are still live.
    #[must_use]
    pub fn compact_min_bytes(mut self, bytes: u64) -> Self {
        self.compact_min_bytes = bytes;
        self
    }
}

fn io_error(context: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::JournalIo { context, source }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---- encoding ----

/// Records not yet handed to the file, in the order the broker made its changes.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    buf: Vec<u8>,
    /// Bytes appended since the journal was opened (a logical position).
    appended: u64,
    /// Publish records in the file and the buffer (for the compaction rule).
    publishes: u64,
}

impl Pending {
    /// The logical position after the last record appended.
    pub(crate) fn end(&self) -> u64 {
        self.appended
    }

    fn frame(&mut self, body: impl FnOnce(&mut Vec<u8>)) {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0; FRAME_HEADER]);
        body(&mut self.buf);
        let body_len = self.buf.len() - start - FRAME_HEADER;
        // A body larger than 4 GiB cannot be framed; the record is left out and the
        // length check on replay never sees it. Payloads that large are not expected.
        let Ok(len) = u32::try_from(body_len) else {
            self.buf.truncate(start);
            return;
        };
        let len = len.to_le_bytes();
        let len_crc = crc32fast::hash(&len).to_le_bytes();
        let body_crc =
            crc32fast::hash(self.buf.get(start + FRAME_HEADER..).unwrap_or_default()).to_le_bytes();
        if let Some(header) = self.buf.get_mut(start..start + FRAME_HEADER) {
            let fields = len.iter().chain(&len_crc).chain(&body_crc);
            for (to, from) in header.iter_mut().zip(fields) {
                *to = *from;
            }
        }
        self.appended += (self.buf.len() - start) as u64;
    }

    pub(crate) fn declare(&mut self, queue: &str, config: &QueueConfig) {
        self.frame(|b| {
            b.push(DECLARE);
            put_str8(b, queue);
            put_duration(b, config.get_ack_wait());
            let retry = config.get_retry();
            let (multiplier, max_delay, jitter) = retry.shape();
            b.extend_from_slice(&retry.max_attempts().to_le_bytes());
            put_duration(b, retry.initial());
            b.extend_from_slice(&multiplier.to_bits().to_le_bytes());
            put_duration(b, max_delay);
            b.extend_from_slice(&jitter.to_bits().to_le_bytes());
            let (max_ready, max_dead) = config.bounds();
            b.extend_from_slice(&(max_ready as u64).to_le_bytes());
            b.extend_from_slice(&(max_dead as u64).to_le_bytes());
            let prefetch = config.get_prefetch().unwrap_or(0) as u64;
            b.extend_from_slice(&prefetch.to_le_bytes());
        });
    }

    pub(crate) fn bind(&mut self, topic: &str, queue: &str) {
        self.frame(|b| {
            b.push(BIND);
            put_str8(b, topic);
            put_str8(b, queue);
        });
    }

    pub(crate) fn publish(&mut self, queue: &str, envelope: &Envelope) {
        self.publishes += 1;
        self.frame(|b| {
            b.push(PUBLISH);
            put_str8(b, queue);
            b.extend_from_slice(envelope.id().as_uuid().as_bytes());
            b.extend_from_slice(&unix_millis(envelope.published_at()).to_le_bytes());
            let headers = envelope.headers();
            b.extend_from_slice(&(headers.len() as u16).to_le_bytes());
            for (name, value) in headers.iter() {
                put_bytes32(b, name.as_bytes());
                put_bytes32(b, value.as_bytes());
            }
            put_bytes32(b, envelope.payload());
        });
    }

    pub(crate) fn delivered(&mut self, queue: &str, id: MessageId, attempt: u32) {
        self.frame(|b| {
            b.push(DELIVERED);
            put_str8(b, queue);
            b.extend_from_slice(id.as_uuid().as_bytes());
            b.extend_from_slice(&attempt.to_le_bytes());
        });
    }

    pub(crate) fn ack(&mut self, queue: &str, id: MessageId) {
        self.frame(|b| {
            b.push(ACK);
            put_str8(b, queue);
            b.extend_from_slice(id.as_uuid().as_bytes());
        });
    }

    pub(crate) fn dead(&mut self, letter: &DeadLetter) {
        self.dead_fields(
            &letter.queue,
            letter.envelope.id(),
            letter.attempts,
            letter.dead_at,
            &letter.reason,
        );
    }

    fn dead_fields(
        &mut self,
        queue: &str,
        id: MessageId,
        attempts: u32,
        dead_at: SystemTime,
        reason: &str,
    ) {
        self.frame(|b| {
            b.push(DEAD);
            put_str8(b, queue);
            b.extend_from_slice(id.as_uuid().as_bytes());
            b.extend_from_slice(&attempts.to_le_bytes());
            b.extend_from_slice(&unix_millis(dead_at).to_le_bytes());
            put_bytes32(b, reason.as_bytes());
        });
    }

    pub(crate) fn redriven(&mut self, queue: &str, id: MessageId) {
        self.frame(|b| {
            b.push(REDRIVEN);
            put_str8(b, queue);
            b.extend_from_slice(id.as_uuid().as_bytes());
        });
    }

    /// Records the settlement of a delivery by its outcome; a retry or an extension
    /// needs none (the delivery record counted the attempt).
    pub(crate) fn settled(
        &mut self,
        queue: &str,
        envelope: &Envelope,
        disposition: &Disposition,
        now: SystemTime,
    ) {
        match disposition {
            Disposition::Removed => self.ack(queue, envelope.id()),
            Disposition::DeadLetter { reason } => {
                self.dead_fields(queue, envelope.id(), envelope.attempt(), now, reason);
            }
            Disposition::Retry { .. } | Disposition::Extended => {}
        }
    }
}

fn put_str8(b: &mut Vec<u8>, s: &str) {
    // Queue and topic names are checked to at most 200 bytes.
    let bytes = s.as_bytes();
    let len = bytes.len().min(255);
    b.push(len as u8);
    b.extend_from_slice(bytes.get(..len).unwrap_or_default());
}

fn put_bytes32(b: &mut Vec<u8>, bytes: &[u8]) {
    b.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    b.extend_from_slice(bytes);
}

fn put_duration(b: &mut Vec<u8>, d: Duration) {
    b.extend_from_slice(&d.as_secs().to_le_bytes());
    b.extend_from_slice(&d.subsec_nanos().to_le_bytes());
}

// ---- decoding ----

/// A record read back from the file.
#[derive(Debug)]
enum Record {
    Declare(String, QueueConfig),
    Bind(String, String),
    Publish(String, Envelope),
    Delivered(String, MessageId, u32),
    Ack(String, MessageId),
    Dead {
        queue: String,
        id: MessageId,
        attempts: u32,
        dead_at: SystemTime,
        reason: String,
    },
    Redriven(String, MessageId),
}

struct Reader<'a> {
    rest: &'a [u8],
}

type Parse<T> = std::result::Result<T, &'static str>;

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Parse<&'a [u8]> {
        if self.rest.len() < n {
            return Err("record shorter than its fields");
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Parse<[u8; N]> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn u8(&mut self) -> Parse<u8> {
        let [byte] = self.array::<1>()?;
        Ok(byte)
    }
    fn u16(&mut self) -> Parse<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Parse<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Parse<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn f64(&mut self) -> Parse<f64> {
        Ok(f64::from_bits(self.u64()?))
    }
    fn duration(&mut self) -> Parse<Duration> {
        let secs = self.u64()?;
        let nanos = self.u32()?;
        if nanos >= 1_000_000_000 {
            return Err("duration with more than a second of nanoseconds");
        }
        Ok(Duration::new(secs, nanos))
    }
    fn str8(&mut self) -> Parse<String> {
        let len = usize::from(self.u8()?);
        self.text(len)
    }
    fn str32(&mut self) -> Parse<String> {
        let len = self.u32()? as usize;
        self.text(len)
    }
    fn text(&mut self, len: usize) -> Parse<String> {
        std::str::from_utf8(self.take(len)?)
            .map(str::to_owned)
            .map_err(|_| "text that is not UTF-8")
    }
    fn id(&mut self) -> Parse<MessageId> {
        Ok(MessageId::from(uuid::Uuid::from_bytes(self.array()?)))
    }
    fn millis(&mut self) -> Parse<SystemTime> {
        UNIX_EPOCH
            .checked_add(Duration::from_millis(self.u64()?))
            .ok_or("time out of range")
    }
}

fn to_usize(n: u64) -> Parse<usize> {
    usize::try_from(n).map_err(|_| "bound too large for this machine")
}

fn decode(body: &[u8]) -> Parse<Record> {
    let mut r = Reader { rest: body };
    let record = match r.u8()? {
        DECLARE => {
            let queue = r.str8()?;
            let ack_wait = r.duration()?;
            let max_attempts = r.u32()?;
            let initial = r.duration()?;
            let multiplier = r.f64()?;
            let max_delay = r.duration()?;
            let jitter = r.f64()?;
            let max_ready = to_usize(r.u64()?)?;
            let max_dead = to_usize(r.u64()?)?;
            let prefetch = to_usize(r.u64()?)?;
            let retry = RetryPolicy::new(max_attempts, initial)
                .multiplier(multiplier)
                .max_delay(max_delay)
                .jitter(jitter);
            let mut config = QueueConfig::default()
                .ack_wait(ack_wait)
                .retry(retry)
                .max_ready(max_ready)
                .max_dead(max_dead);
            if prefetch > 0 {
                config = config.prefetch(prefetch);
            }
            config
                .validate()
                .map_err(|_| "queue configuration out of range")?;
            Record::Declare(queue, config)
        }
        BIND => Record::Bind(r.str8()?, r.str8()?),
        PUBLISH => {
            let queue = r.str8()?;
            let id = r.id()?;
            let published = r.u64()?;
            let count = r.u16()?;
            let mut pairs = Vec::with_capacity(usize::from(count).min(64) + 3);
            let id_text = id.to_string();
            let published_text = published.to_string();
            pairs.push(("bk-id".to_owned(), id_text));
            pairs.push(("bk-attempt".to_owned(), "0".to_owned()));
            pairs.push(("bk-published-at".to_owned(), published_text));
            for _ in 0..count {
                let name = r.str32()?;
                let value = r.str32()?;
                pairs.push((name, value));
            }
            let len = r.u32()? as usize;
            let payload = Bytes::copy_from_slice(r.take(len)?);
            if !r.rest.is_empty() {
                return Err("record longer than its fields");
            }
            let envelope =
                Envelope::from_pairs(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())), payload)
                    .map_err(|_| "message headers that do not parse")?;
            return Ok(Record::Publish(queue, envelope));
        }
        DELIVERED => Record::Delivered(r.str8()?, r.id()?, r.u32()?),
        ACK => Record::Ack(r.str8()?, r.id()?),
        DEAD => Record::Dead {
            queue: r.str8()?,
            id: r.id()?,
            attempts: r.u32()?,
            dead_at: r.millis()?,
            reason: r.str32()?,
        },
        REDRIVEN => Record::Redriven(r.str8()?, r.id()?),
        _ => return Err("unknown record kind"),
    };
    if !r.rest.is_empty() {
        return Err("record longer than its fields");
    }
    Ok(record)
}

/// The frames of a journal file after its magic: the bodies with their offsets, and the
/// length of the good prefix (a torn tail after it is to be dropped).
/// A record's body and where its frame starts in the file.
type Frame<'a> = (u64, &'a [u8]);

fn frames(data: &[u8]) -> Result<(Vec<Frame<'_>>, usize)> {
    let mut out = Vec::new();
    let mut at = MAGIC.len();
    let tail_is_torn = |from: usize| {
        data.get(from..)
            .is_none_or(|rest| rest.iter().all(|b| *b == 0))
    };
    while let Some(rest) = data.get(at..) {
        if rest.is_empty() {
            break;
        }
        let corrupt = |reason| Error::JournalCorrupt {
            offset: at as u64,
            reason,
        };
        let Some(header) = rest.get(..FRAME_HEADER) else {
            // A header cut short can only be the end of a torn write.
            break;
        };
        let mut r = Reader { rest: header };
        let (len, len_crc, body_crc) = match (r.array::<4>(), r.u32(), r.u32()) {
            (Ok(len), Ok(len_crc), Ok(body_crc)) => (len, len_crc, body_crc),
            _ => break,
        };
        if crc32fast::hash(&len) != len_crc {
            if tail_is_torn(at) {
                break;
            }
            return Err(corrupt("frame length fails its checksum"));
        }
        let len = u32::from_le_bytes(len) as usize;
        let end = at.saturating_add(FRAME_HEADER).saturating_add(len);
        let Some(body) = data.get(at + FRAME_HEADER..end) else {
            // The length is sound but the body is cut short: a torn write.
            break;
        };
        if crc32fast::hash(body) != body_crc {
            if tail_is_torn(end) {
                break;
            }
            return Err(corrupt("record fails its checksum"));
        }
        out.push((at as u64, body));
        at = end;
    }
    Ok((out, at))
}

// ---- replay ----

#[derive(Debug)]
struct Live {
    envelope: Envelope,
    /// Copies published under this id and not settled.
    copies: u32,
    attempts: u32,
    order: u64,
}

#[derive(Debug)]
struct QueueState {
    config: QueueConfig,
    declared: u64,
    live: HashMap<MessageId, Live>,
    dead: Vec<DeadLetter>,
}

/// A queue as the journal left it.
#[derive(Debug)]
pub(crate) struct RestoredQueue {
    pub(crate) name: String,
    pub(crate) config: QueueConfig,
    /// Messages to deliver, in publication order, with their attempts so far.
    pub(crate) ready: Vec<Envelope>,
    /// Dead letters, oldest first; those that ran out of deliveries at the restart last.
    pub(crate) dead: Vec<DeadLetter>,
    /// How many of `dead` (at its end) were dead-lettered by this restart: a delivery
    /// that was in flight on its last allowed attempt. They need a record.
    pub(crate) expired: usize,
}

/// The state the journal's records add up to.
#[derive(Debug, Default)]
pub(crate) struct Restored {
    pub(crate) queues: Vec<RestoredQueue>,
    pub(crate) bindings: Vec<(String, String)>,
}

fn replay(records: Vec<(u64, Record)>, now: SystemTime) -> Result<Restored> {
    let mut queues: HashMap<String, QueueState> = HashMap::new();
    let mut bindings: Vec<(String, String)> = Vec::new();
    for (order, (offset, record)) in (0u64..).zip(records) {
        let corrupt = |reason| Error::JournalCorrupt { offset, reason };
        match record {
            Record::Declare(name, config) => {
                queues
                    .entry(name)
                    .and_modify(|q| q.config = config.clone())
                    .or_insert(QueueState {
                        config,
                        declared: order,
                        live: HashMap::new(),
                        dead: Vec::new(),
                    });
            }
            Record::Bind(topic, queue) => {
                if !bindings.iter().any(|(t, q)| *t == topic && *q == queue) {
                    bindings.push((topic, queue));
                }
            }
            Record::Publish(queue, envelope) => {
                let state = queues
                    .get_mut(&queue)
                    .ok_or(corrupt("message for a queue never declared"))?;
                let live = state.live.entry(envelope.id()).or_insert(Live {
                    envelope,
                    copies: 0,
                    attempts: 0,
                    order,
                });
                live.copies = live.copies.saturating_add(1);
            }
            Record::Delivered(queue, id, attempt) => {
                if let Some(live) = queues.get_mut(&queue).and_then(|q| q.live.get_mut(&id)) {
                    live.attempts = live.attempts.max(attempt);
                }
            }
            Record::Ack(queue, id) => {
                if let Some(state) = queues.get_mut(&queue) {
                    settle_copy(state, id);
                }
            }
            Record::Dead {
                queue,
                id,
                attempts,
                dead_at,
                reason,
            } => {
                if let Some(state) = queues.get_mut(&queue)
                    && let Some(mut envelope) = settle_copy(state, id)
                {
                    envelope.set_attempt(attempts);
                    let letter = DeadLetter::new(&queue, envelope, reason, attempts, dead_at);
                    state.dead.push(letter);
                }
            }
            Record::Redriven(queue, id) => {
                let Some(state) = queues.get_mut(&queue) else {
                    continue;
                };
                if let Some(at) = state.dead.iter().position(|d| d.envelope.id() == id) {
                    let letter = state.dead.remove(at);
                    let envelope = letter.into_redriven();
                    let live = state.live.entry(id).or_insert(Live {
                        envelope,
                        copies: 0,
                        attempts: 0,
                        order,
                    });
                    live.copies = live.copies.saturating_add(1);
                    live.attempts = 0;
                } else if let Some(live) = state.live.get_mut(&id) {
                    // Dead-lettered when its ack deadline passed (not recorded), then
                    // re-driven.
                    live.attempts = 0;
                    live.order = order;
                }
            }
        }
    }
    let mut named: Vec<(String, QueueState)> = queues.into_iter().collect();
    named.sort_by_key(|(_, q)| q.declared);
    let mut out = Restored {
        queues: Vec::with_capacity(named.len()),
        bindings,
    };
    for (name, state) in named {
        let mut live: Vec<Live> = state.live.into_values().collect();
        live.sort_by_key(|l| l.order);
        let mut ready = Vec::with_capacity(live.len());
        let mut dead = state.dead;
        let before = dead.len();
        for message in live {
            let mut envelope = message.envelope;
            envelope.set_attempt(message.attempts);
            for _ in 0..message.copies {
                // A delivery in flight at the crash: its ack deadline has passed.
                if message.attempts > 0
                    && let Disposition::DeadLetter { reason } =
                        decide_expired(message.attempts, state.config.get_retry())
                {
                    dead.push(DeadLetter::new(
                        &name,
                        envelope.clone(),
                        reason,
                        message.attempts,
                        now,
                    ));
                } else {
                    ready.push(envelope.clone());
                }
            }
        }
        let expired = dead.len() - before;
        out.queues.push(RestoredQueue {
            name,
            config: state.config,
            ready,
            dead,
            expired,
        });
    }
    Ok(out)
}

/// Takes one copy of message `id` out of the live ones; its envelope when that was the
/// last copy or there are more (the envelope is cloned then).
fn settle_copy(state: &mut QueueState, id: MessageId) -> Option<Envelope> {
    let live = state.live.get_mut(&id)?;
    live.copies = live.copies.saturating_sub(1);
    if live.copies == 0 {
        state.live.remove(&id).map(|l| l.envelope)
    } else {
        Some(live.envelope.clone())
    }
}

// ---- the file ----

#[derive(Debug)]
struct FileState {
    file: File,
    /// Logical position written to the file, and flushed to stable storage.
    written: u64,
    synced: u64,
}

/// The journal of an open broker.
#[derive(Debug)]
pub(crate) struct Journal {
    dir: PathBuf,
    pub(crate) policy: SyncPolicy,
    compact_min_bytes: u64,
    pending: Mutex<Pending>,
    file: Mutex<FileState>,
    /// The file's size, and its size after the last compaction (or the open).
    len: AtomicU64,
    base_len: AtomicU64,
    /// A write failed: the file may miss records, so nothing more is accepted.
    failed: AtomicBool,
}

impl Journal {
    /// Opens (or creates) the journal in `options.dir`, drops a torn tail, and returns it
    /// with the state its records add up to.
    pub(crate) fn open(options: &JournalOptions, now: SystemTime) -> Result<(Self, Restored)> {
        fs::create_dir_all(&options.dir).map_err(io_error("create the journal directory"))?;
        let path = options.dir.join(FILE_NAME);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_error("open the journal"))?;
        let mut data = Vec::new();
        file.read_to_end(&mut data)
            .map_err(io_error("read the journal"))?;
        let (restored, good, publishes) = if data.len() < MAGIC.len() {
            // New, or its creation was cut short.
            if !MAGIC.starts_with(&data) {
                return Err(Error::JournalCorrupt {
                    offset: 0,
                    reason: "not a broker journal (bad magic)",
                });
            }
            file.set_len(0).map_err(io_error("reset the journal"))?;
            file.seek(SeekFrom::Start(0))
                .map_err(io_error("reset the journal"))?;
            file.write_all(MAGIC)
                .map_err(io_error("write the journal"))?;
            file.sync_data().map_err(io_error("sync the journal"))?;
            sync_dir(&options.dir)?;
            (Restored::default(), MAGIC.len(), 0)
        } else {
            if data.get(..MAGIC.len()) != Some(MAGIC.as_slice()) {
                return Err(Error::JournalCorrupt {
                    offset: 0,
                    reason: "not a broker journal (bad magic)",
                });
            }
            let (bodies, good) = frames(&data)?;
            let mut records = Vec::with_capacity(bodies.len());
            let mut publishes = 0u64;
            for (offset, body) in bodies {
                let record =
                    decode(body).map_err(|reason| Error::JournalCorrupt { offset, reason })?;
                publishes += u64::from(matches!(record, Record::Publish(..)));
                records.push((offset, record));
            }
            (replay(records, now)?, good, publishes)
        };
        if good < data.len() {
            // A torn tail: cut it off so new records follow the last good one.
            file.set_len(good as u64)
                .map_err(io_error("truncate the journal's torn tail"))?;
            file.sync_data().map_err(io_error("sync the journal"))?;
        }
        file.seek(SeekFrom::Start(good as u64))
            .map_err(io_error("seek the journal"))?;
        let journal = Self {
            dir: options.dir.clone(),
            policy: options.sync,
            compact_min_bytes: options.compact_min_bytes,
            pending: Mutex::new(Pending {
                publishes,
                ..Pending::default()
            }),
            file: Mutex::new(FileState {
                file,
                written: 0,
                synced: 0,
            }),
            len: AtomicU64::new(good as u64),
            base_len: AtomicU64::new(good as u64),
            failed: AtomicBool::new(false),
        };
        Ok((journal, restored))
    }

    /// The buffer to append records to; take it while holding the lock under which the
    /// change was made, so records keep the order of the changes.
    pub(crate) fn pending(&self) -> MutexGuard<'_, Pending> {
        lock(&self.pending)
    }

    /// Writes the records up to `end` to the file and, with `sync`, to stable storage.
    /// Records appended by others up to then go along (group commit).
    pub(crate) fn commit(&self, end: u64, sync: bool) -> Result<()> {
        let mut file = lock(&self.file);
        if self.failed.load(Ordering::Relaxed) {
            return Err(Error::JournalIo {
                context: "an earlier journal write failed",
                source: std::io::Error::other("journal closed after a failed write"),
            });
        }
        if file.written < end {
            let (buf, appended) = {
                let mut pending = lock(&self.pending);
                (std::mem::take(&mut pending.buf), pending.appended)
            };
            if let Err(e) = file.file.write_all(&buf) {
                self.failed.store(true, Ordering::Relaxed);
                return Err(Error::JournalIo {
                    context: "write the journal",
                    source: e,
                });
            }
            file.written = appended;
            self.len.fetch_add(buf.len() as u64, Ordering::Relaxed);
        }
        if sync && file.synced < end {
            let written = file.written;
            if let Err(e) = file.file.sync_data() {
                self.failed.store(true, Ordering::Relaxed);
                return Err(Error::JournalIo {
                    context: "sync the journal",
                    source: e,
                });
            }
            file.synced = written;
        }
        Ok(())
    }

    /// Writes and syncs everything appended so far.
    pub(crate) fn sync_all(&self) -> Result<()> {
        let end = self.pending().end();
        self.commit(end, true)
    }

    /// Whether the file has grown enough to look at compacting it.
    pub(crate) fn wants_compaction(&self) -> bool {
        let len = self.len.load(Ordering::Relaxed);
        len >= self.compact_min_bytes
            && len >= self.base_len.load(Ordering::Relaxed).saturating_mul(2)
    }

    /// Whether fewer than half of the messages published into the file are live; if not,
    /// the next look is when the file has doubled again.
    pub(crate) fn mostly_settled(&self, live: u64) -> bool {
        let publishes = self.pending().publishes;
        if live.saturating_mul(2) < publishes {
            return true;
        }
        self.base_len
            .store(self.len.load(Ordering::Relaxed), Ordering::Relaxed);
        false
    }

    /// Replaces the file with `snapshot` (the records of the live state, framed by
    /// `write`): written to a new file, synced, renamed over the old one, the directory
    /// synced. The caller holds the lock of the state the snapshot was taken from, so no
    /// record is appended meanwhile; what was pending is covered by the snapshot.
    pub(crate) fn replace(&self, write: impl FnOnce(&mut Pending)) -> Result<()> {
        let mut file = lock(&self.file);
        let mut pending = lock(&self.pending);
        let mut fresh = Pending::default();
        write(&mut fresh);
        let temp = self.dir.join(TEMP_NAME);
        let result = (|| {
            let mut out = File::create(&temp)?;
            out.write_all(MAGIC)?;
            out.write_all(&fresh.buf)?;
            out.sync_data()?;
            fs::rename(&temp, self.dir.join(FILE_NAME))?;
            Ok::<File, std::io::Error>(out)
        })();
        let out = match result {
            Ok(out) => out,
            Err(e) => {
                // The old file is intact (the rename is atomic); keep using it.
                let _ = fs::remove_file(&temp);
                return Err(Error::JournalIo {
                    context: "compact the journal",
                    source: e,
                });
            }
        };
        sync_dir(&self.dir)?;
        file.file = out;
        pending.buf.clear();
        pending.publishes = fresh.publishes;
        file.written = pending.appended;
        file.synced = pending.appended;
        let len = (MAGIC.len() + fresh.buf.len()) as u64;
        self.len.store(len, Ordering::Relaxed);
        self.base_len.store(len, Ordering::Relaxed);
        Ok(())
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        // Best effort: a broker dropped with records pending writes and syncs them.
        let _ = self.sync_all();
    }
}

/// Makes a rename or a new file in `dir` durable (a no-op where directories cannot be
/// opened, as on Windows).
fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_error("sync the journal directory"))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn file_with(records: impl FnOnce(&mut Pending)) -> Vec<u8> {
        let mut pending = Pending::default();
        records(&mut pending);
        let mut data = MAGIC.to_vec();
        data.extend_from_slice(&pending.buf);
        data
    }

    #[test]
    fn records_round_trip() {
        let envelope = Envelope::new("payload")
            .with_header("content-type", "text/plain")
            .unwrap();
        let data = file_with(|p| {
            p.declare("q", &QueueConfig::default().prefetch(3));
            p.publish("q", &envelope);
            p.delivered("q", envelope.id(), 2);
        });
        let (bodies, good) = frames(&data).unwrap();
        assert_eq!(good, data.len());
        assert_eq!(bodies.len(), 3);
        match decode(bodies[0].1).unwrap() {
            Record::Declare(name, config) => {
                assert_eq!(name, "q");
                assert_eq!(config, QueueConfig::default().prefetch(3));
            }
            other => panic!("{other:?}"),
        }
        match decode(bodies[1].1).unwrap() {
            Record::Publish(_, read) => {
                assert_eq!(read.id(), envelope.id());
                assert_eq!(read.payload(), envelope.payload());
                assert_eq!(read.headers(), envelope.headers());
                assert_eq!(read.published_at(), envelope.published_at());
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode(bodies[2].1).unwrap(),
            Record::Delivered(_, _, 2)
        ));
    }

    #[test]
    fn every_cut_of_the_last_record_is_a_torn_tail() {
        let data = file_with(|p| {
            p.declare("q", &QueueConfig::default());
            p.publish("q", &Envelope::new("x"));
        });
        let (whole, _) = frames(&data).unwrap();
        let first_end = whole[1].0 as usize;
        for cut in first_end..data.len() {
            let (bodies, good) = frames(&data[..cut]).unwrap();
            assert_eq!(bodies.len(), 1, "cut at {cut}");
            assert_eq!(good, first_end);
        }
        // Zeros after the last good record (a size extended before its data) are torn too.
        let mut zeroed = data.clone();
        zeroed.extend_from_slice(&[0; 40]);
        assert_eq!(frames(&zeroed).unwrap().0.len(), 2);
    }

    #[test]
    fn a_flipped_byte_before_the_end_is_an_error() {
        let data = file_with(|p| {
            p.declare("q", &QueueConfig::default());
            p.publish("q", &Envelope::new("x"));
        });
        let second = frames(&data).unwrap().0[1].0 as usize;
        // Every byte of the first record (the last one could be a torn write).
        for at in MAGIC.len()..second {
            let mut bad = data.clone();
            bad[at] ^= 0x40;
            match frames(&bad) {
                Err(Error::JournalCorrupt { .. }) => {}
                other => panic!("flip at {at}: {:?}", other.map(|(b, g)| (b.len(), g))),
            }
        }
    }

    #[test]
    fn garbage_bodies_are_errors_not_panics() {
        for len in 0..64 {
            let body: Vec<u8> = (0..len).map(|i| (i * 37 + 3) as u8).collect();
            for kind in 0..9u8 {
                let mut b = body.clone();
                if let Some(first) = b.first_mut() {
                    *first = kind;
                }
                let _ = decode(&b);
            }
        }
    }
}
