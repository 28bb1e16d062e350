//! The HTTP/2 bounds the `h2` crate leaves open, kept on the raw frames of one
//! downstream connection, in the spirit of `checked_io`.
//!
//! `h2` already bounds the header list (decoded size, 32 octets per field, GOAWAY
//! `ENHANCE_YOUR_CALM` past four times the limit), CONTINUATION frames per header block,
//! streams reset before they are served (rapid reset) and streams it resets for the client's
//! errors (MadeYouReset), and it queues at most one PING and one SETTINGS acknowledgement.
//! It does not bound how often a client may make it do that work, nor how long a response
//! may wait for a window that never opens, nor how long a header block may take. So
//! [`H2Guard`] reads every frame header the client sends and counts, per second, the frames
//! that cost work without carrying a request (SETTINGS, PING, PRIORITY, empty DATA and
//! CONTINUATION, unknown types, and WINDOW_UPDATE frames beyond what the DATA sent to the
//! client earns) and the RST_STREAM frames; the connection's task checks
//! [`Watch`] on a timer for a header block past its deadline and for a response whose next
//! chunk has waited for the client's window longer than the send timeout. Any of these
//! ends the connection with GOAWAY `ENHANCE_YOUR_CALM` (RFC 9113 section 7), which the
//! guard writes itself at a frame boundary of what `h2` writes (it reads the outgoing frame
//! headers for that), then fails the connection's IO so `h2` drops it.
//!
//! ```text
//! client ──frames──▶ H2Guard (count, truncate at the offending frame) ──▶ h2_server/h2
//! client ◀──frames── H2Guard (track frame boundaries, then GOAWAY) ◀── h2_server/h2
//! ```
//!
//! On the way out the guard also batches. `h2` writes each response body's DATA frame in
//! a write of its own (it holds one frame's payload uncopied and must flush it before the
//! next frame). The guard takes what `h2` writes during one poll of the connection's task
//! into a buffer of up to 16 KiB and sends it at the next poll, which the task asks for by
//! waking itself. Responses that finish together then leave in one write: about 0.1 writes
//! per request under load instead of 1 (docs/benchmarks.md). Larger writes go straight
//! through.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Buf as _, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The client connection preface (RFC 9113 section 3.4).
pub(crate) const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const FRAME_HEADER: usize = 9;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// GOAWAY `ENHANCE_YOUR_CALM` (RFC 9113 section 7).
const ENHANCE_YOUR_CALM: u32 = 0xb;

/// WINDOW_UPDATE frames each non-empty DATA frame sent to the client pays for. A client
/// reading a response opens the connection's and the stream's windows as it goes, usually
/// once per several frames; WINDOW_UPDATE frames beyond this allowance (a flood with no
/// data flowing) are charged to the control-frame budget instead.
const WINDOW_UPDATES_PER_DATA_FRAME: u32 = 4;

/// What the guard holds of the bytes `h2` writes before it writes them itself: writes of
/// one poll of the connection task go out together (see [`H2Guard`]); a write at least this
/// large goes straight through, uncopied.
const HOLD: usize = 16 * 1024;

/// The per-connection limits the guard keeps (from `[server.http2]`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct GuardLimits {
    pub(crate) control_frames_per_second: u32,
    pub(crate) resets_per_second: u32,
    pub(crate) header_read_timeout: Duration,
    pub(crate) send_timeout: Duration,
    pub(crate) max_refused_requests: u32,
}

/// Why the guard ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Violation {
    /// Too many SETTINGS, PING, PRIORITY, empty or unknown frames per second.
    ControlFlood,
    /// Too many RST_STREAM frames per second.
    ResetFlood,
    /// The preface or a header block did not complete within the header read timeout.
    HeaderTimeout,
    /// A response waited longer than the send timeout for the client to read.
    SendStall,
    /// Too many requests refused on this connection.
    RefusedRequests,
}

impl Violation {
    fn describe(self) -> &'static str {
        match self {
            Self::ControlFlood => "control frame flood",
            Self::ResetFlood => "RST_STREAM flood",
            Self::HeaderTimeout => "header block not completed in time",
            Self::SendStall => "response not read within the send timeout",
            Self::RefusedRequests => "too many refused requests",
        }
    }
}

#[derive(Debug, Default)]
struct Shared {
    kill: Option<Violation>,
    /// The connection task, woken when the timer ends the connection.
    waker: Option<Waker>,
    /// Responses waiting for the client's window, and since when: a few at a time (at most
    /// one per stream), so a list searched in place, cheaper than hashing.
    waiting: Vec<(u64, Instant)>,
    next_stall: u64,
    /// When the preface, or the header block in progress, must be complete.
    header_deadline: Option<Instant>,
    refused: u32,
}

/// What a connection's guard, its request handler and its timer share.
#[derive(Debug, Clone, Default)]
pub(crate) struct Watch(Arc<WatchState>);

#[derive(Debug, Default)]
struct WatchState {
    /// Whether `shared.kill` is set: the guard reads this on every read and write, and
    /// takes the lock only once it is true.
    killed: AtomicBool,
    shared: Mutex<Shared>,
    /// Counts the connection task's polls of the connection ([`Watch::next_poll`]).
    epoch: AtomicU64,
    /// Counts the reads that brought bytes from the client (for the keep-alive).
    reads: AtomicU64,
}

impl Watch {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.0
            .shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Ends the connection: the guard writes GOAWAY at the next frame boundary.
    pub(crate) fn kill(&self, violation: Violation) {
        let waker = {
            let mut shared = self.lock();
            shared.kill.get_or_insert(violation);
            self.0.killed.store(true, Ordering::Release);
            shared.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Counts a request the proxy refused; too many end the connection.
    pub(crate) fn refused(&self, max: u32) {
        let over = {
            let mut shared = self.lock();
            shared.refused = shared.refused.saturating_add(1);
            shared.refused > max
        };
        if over {
            self.kill(Violation::RefusedRequests);
        }
    }

    /// What the connection's timer finds at `now`: a header block past its deadline, or a
    /// response nobody read for `send_timeout`.
    pub(crate) fn overdue(&self, now: Instant, send_timeout: Duration) -> Option<Violation> {
        let shared = self.lock();
        if shared.header_deadline.is_some_and(|d| now >= d) {
            return Some(Violation::HeaderTimeout);
        }
        shared
            .waiting
            .iter()
            .any(|(_, since)| now.saturating_duration_since(*since) >= send_timeout)
            .then_some(Violation::SendStall)
    }

    /// Marks a response as waiting for the client's window since `since` (its next chunk
    /// cannot go out); the send timeout runs from then until [`Watch::resumed`].
    pub(crate) fn stalled(&self, since: Instant) -> u64 {
        let mut shared = self.lock();
        let id = shared.next_stall;
        shared.next_stall = id.wrapping_add(1);
        shared.waiting.push((id, since));
        id
    }

    /// The response marked `id` by [`Watch::stalled`] no longer waits.
    pub(crate) fn resumed(&self, id: u64) {
        let mut shared = self.lock();
        if let Some(at) = shared.waiting.iter().position(|(body, _)| *body == id) {
            shared.waiting.swap_remove(at);
        }
    }

    /// Marks a new poll of the connection by its task: what the guard held back from the
    /// last one is written at the guard's first call in this one.
    pub(crate) fn next_poll(&self) {
        self.0.epoch.fetch_add(1, Ordering::Relaxed);
    }

    /// How many reads brought bytes from the client so far: the keep-alive's sign of life.
    pub(crate) fn reads(&self) -> u64 {
        self.0.reads.load(Ordering::Relaxed)
    }

    fn epoch(&self) -> u64 {
        self.0.epoch.load(Ordering::Relaxed)
    }

    fn set_header_deadline(&self, deadline: Option<Instant>) {
        self.lock().header_deadline = deadline;
    }
}

/// A token bucket of `rate` frames per second with a burst of `rate`, in thousandths of a
/// frame so that it refills every millisecond.
#[derive(Debug)]
struct Budget {
    rate: u64,
    left: u64,
    at: Instant,
}

impl Budget {
    fn new(rate: u32, now: Instant) -> Self {
        let rate = u64::from(rate.max(1));
        Self {
            rate,
            left: rate * 1000,
            at: now,
        }
    }

    /// Takes one frame; false when the budget is spent.
    fn take(&mut self) -> bool {
        let now = Instant::now();
        let ms =
            u64::try_from(now.saturating_duration_since(self.at).as_millis()).unwrap_or(u64::MAX);
        if ms > 0 {
            self.left = self
                .left
                .saturating_add(ms.saturating_mul(self.rate))
                .min(self.rate * 1000);
            self.at = now;
        }
        match self.left.checked_sub(1000) {
            Some(left) => {
                self.left = left;
                true
            }
            None => false,
        }
    }
}

/// Frame boundaries of one direction: the header being read and the payload left.
#[derive(Debug, Default)]
struct Framing {
    head: [u8; FRAME_HEADER],
    head_len: usize,
    payload_left: usize,
}

impl Framing {
    /// Advances over `bytes`; calls `on_head` with each complete frame header and the
    /// offset in `bytes` where that header began (0 if it began in an earlier call). Stops
    /// at the first header `on_head` refuses and returns that offset.
    fn advance(
        &mut self,
        mut bytes: &[u8],
        mut on_head: impl FnMut(&[u8; FRAME_HEADER]) -> Result<(), Violation>,
    ) -> Result<(), (usize, Violation)> {
        let total = bytes.len();
        while !bytes.is_empty() {
            if self.payload_left > 0 {
                let take = self.payload_left.min(bytes.len());
                self.payload_left -= take;
                bytes = bytes.get(take..).unwrap_or_default();
                continue;
            }
            let began = (total - bytes.len()).saturating_sub(self.head_len);
            let take = (FRAME_HEADER - self.head_len).min(bytes.len());
            if let (Some(slot), Some(piece)) = (
                self.head.get_mut(self.head_len..self.head_len + take),
                bytes.get(..take),
            ) {
                slot.copy_from_slice(piece);
            }
            self.head_len += take;
            bytes = bytes.get(take..).unwrap_or_default();
            if self.head_len < FRAME_HEADER {
                break;
            }
            self.head_len = 0;
            let [l0, l1, l2, ..] = self.head;
            self.payload_left = (usize::from(l0) << 16) | (usize::from(l1) << 8) | usize::from(l2);
            on_head(&self.head).map_err(|violation| (began, violation))?;
        }
        Ok(())
    }

    /// Bytes to write before the next frame boundary: what is left of the header begun,
    /// else of the payload (0 at a boundary).
    fn to_boundary(&self) -> usize {
        if self.head_len > 0 {
            FRAME_HEADER - self.head_len
        } else {
            self.payload_left
        }
    }
}

/// The guard around one HTTP/2 connection's stream (TCP or TLS).
pub(crate) struct H2Guard<S> {
    inner: S,
    watch: Watch,
    limits: GuardLimits,
    preface_left: usize,
    incoming: Framing,
    outgoing: Framing,
    /// The highest stream the client opened, for the GOAWAY.
    last_stream: u32,
    control: Budget,
    resets: Budget,
    /// WINDOW_UPDATE frames the DATA sent so far has paid for and that are not used yet.
    window_credit: u32,
    /// The GOAWAY frame being written, and how much of it is.
    goaway: Option<([u8; 17], usize)>,
    /// The violation found while reading, before [`Watch`] knows it.
    killed: Option<Violation>,
    /// The waker last given to [`Watch`] (so that a read takes its lock only when the
    /// connection task's waker changed).
    waker: Option<Waker>,
    /// Whether [`Watch`] holds a header deadline (so that each complete header block
    /// takes its lock only when there is one to clear).
    header_deadline: bool,
    /// Bytes `h2` wrote that are not on the socket yet, held for the rest of the poll.
    out: BytesMut,
    /// The poll of the connection ([`Watch::next_poll`]) in which `out` began.
    out_epoch: u64,
    /// `out`'s length when a flush last held it back.
    held_at: Option<usize>,
}

impl<S> std::fmt::Debug for H2Guard<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Guard")
            .field("last_stream", &self.last_stream)
            .field("killed", &self.killed)
            .finish_non_exhaustive()
    }
}

impl<S> H2Guard<S> {
    pub(crate) fn new(inner: S, watch: Watch, limits: GuardLimits) -> Self {
        let now = Instant::now();
        watch.set_header_deadline(Some(now + limits.header_read_timeout));
        Self {
            inner,
            watch,
            limits,
            preface_left: PREFACE.len(),
            incoming: Framing::default(),
            outgoing: Framing::default(),
            last_stream: 0,
            control: Budget::new(limits.control_frames_per_second, now),
            resets: Budget::new(limits.resets_per_second, now),
            window_credit: 0,
            goaway: None,
            killed: None,
            waker: None,
            header_deadline: true,
            out: BytesMut::new(),
            out_epoch: 0,
            held_at: None,
        }
    }

    /// Inspects bytes read from the client; the offset of the first frame refused.
    fn inspect(&mut self, mut bytes: &[u8]) -> Result<(), (usize, Violation)> {
        let mut skipped = 0;
        if self.preface_left > 0 {
            // h2 checks the preface itself; here it is only skipped.
            skipped = self.preface_left.min(bytes.len());
            self.preface_left -= skipped;
            bytes = bytes.get(skipped..).unwrap_or_default();
        }
        let Self {
            incoming,
            watch,
            control,
            resets,
            window_credit,
            last_stream,
            limits,
            header_deadline,
            ..
        } = self;
        let clear_deadline = |deadline: &mut bool| {
            if std::mem::take(deadline) {
                watch.set_header_deadline(None);
            }
        };
        incoming
            .advance(bytes, |head| {
                let [l0, l1, l2, kind, flags, s0, s1, s2, s3] = *head;
                let length = (usize::from(l0) << 16) | (usize::from(l1) << 8) | usize::from(l2);
                let stream = u32::from_be_bytes([s0 & 0x7f, s1, s2, s3]);
                let control_frame = match kind {
                    // DATA: an empty one that does not end its stream carries nothing.
                    0x0 => length == 0 && flags & END_STREAM == 0,
                    // HEADERS: a header block begins.
                    0x1 => {
                        if stream % 2 == 1 && stream > *last_stream {
                            *last_stream = stream;
                        }
                        if flags & END_HEADERS == 0 {
                            *header_deadline = true;
                            watch.set_header_deadline(Some(
                                Instant::now() + limits.header_read_timeout,
                            ));
                        } else {
                            clear_deadline(header_deadline);
                        }
                        false
                    }
                    // RST_STREAM
                    0x3 => {
                        if !resets.take() {
                            return Err(Violation::ResetFlood);
                        }
                        false
                    }
                    // SETTINGS: the first one completes the preface.
                    0x4 => {
                        clear_deadline(header_deadline);
                        flags & ACK == 0
                    }
                    // PING
                    0x6 => flags & ACK == 0,
                    // WINDOW_UPDATE: free while the DATA sent pays for it.
                    0x8 => match window_credit.checked_sub(1) {
                        Some(left) => {
                            *window_credit = left;
                            false
                        }
                        None => true,
                    },
                    // GOAWAY, PUSH_PROMISE (a protocol error h2 reports).
                    0x5 | 0x7 => false,
                    // CONTINUATION
                    0x9 => {
                        if flags & END_HEADERS != 0 {
                            clear_deadline(header_deadline);
                        }
                        length == 0 && flags & END_HEADERS == 0
                    }
                    // PRIORITY, and unknown types (ignored by h2, work all the same).
                    _ => true,
                };
                if control_frame && !control.take() {
                    return Err(Violation::ControlFlood);
                }
                Ok(())
            })
            .map_err(|(at, violation)| (at + skipped, violation))
    }

    /// Follows the frames written to the client: their boundaries, and the WINDOW_UPDATE
    /// allowance each non-empty DATA frame earns.
    fn written(&mut self, bytes: &[u8]) {
        let credit = &mut self.window_credit;
        let _ = self.outgoing.advance(bytes, |head| {
            let [l0, l1, l2, kind, ..] = *head;
            if kind == 0x0 && (l0, l1, l2) != (0, 0, 0) {
                *credit = credit.saturating_add(WINDOW_UPDATES_PER_DATA_FRAME);
            }
            Ok(())
        });
    }

    fn goaway_frame(&self) -> [u8; 17] {
        let [a, b, c, d] = self.last_stream.to_be_bytes();
        let [e, f, g, h] = ENHANCE_YOUR_CALM.to_be_bytes();
        [0, 0, 8, 0x7, 0, 0, 0, 0, 0, a, b, c, d, e, f, g, h]
    }

    fn violation(&mut self) -> Option<Violation> {
        if self.killed.is_none() && self.watch.0.killed.load(Ordering::Acquire) {
            self.killed = self.watch.lock().kill;
        }
        self.killed
    }
}

fn ended(violation: Violation) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, violation.describe())
}

impl<S: AsyncWrite + Unpin> H2Guard<S> {
    /// Writes what the guard holds; ready when all of it is on the socket.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            let n = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out.advance(n);
        }
        self.held_at = None;
        Poll::Ready(Ok(()))
    }

    /// Writes what the guard held back from an earlier poll of the connection.
    fn poll_write_due(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.out.is_empty() || self.out_epoch == self.watch.epoch() {
            return Poll::Ready(Ok(()));
        }
        self.poll_write_out(cx)
    }

    /// Takes `bufs` from `h2`: copied into `out` while they fit under [`HOLD`], else
    /// written after it (a large write straight through).
    fn poll_take(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_write_due(cx))?;
        let total = bufs.iter().map(|b| b.len()).sum::<usize>();
        if self.out.len().saturating_add(total) > HOLD {
            std::task::ready!(self.poll_write_out(cx))?;
            if total >= HOLD {
                let n = std::task::ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, bufs))?;
                let mut left = n;
                for b in bufs {
                    let take = left.min(b.len());
                    self.written(b.get(..take).unwrap_or_default());
                    left -= take;
                }
                return Poll::Ready(Ok(n));
            }
        }
        if self.out.is_empty() {
            self.out_epoch = self.watch.epoch();
        }
        for b in bufs {
            self.out.extend_from_slice(b);
            self.written(b);
        }
        Poll::Ready(Ok(total))
    }

    /// Writes the GOAWAY once `h2`'s writes are at a frame boundary; ready when it is sent.
    fn poll_goaway(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.goaway.is_none() {
            if self.outgoing.to_boundary() > 0 {
                // `h2` still has the rest of a frame to write; its next write finishes it
                // and sends the GOAWAY.
                return Poll::Pending;
            }
            // What `h2` wrote before the boundary goes first.
            std::task::ready!(self.poll_write_out(cx))?;
            self.goaway = Some((self.goaway_frame(), 0));
        }
        while let Some((frame, written)) = &mut self.goaway {
            let Some(rest) = frame.get(*written..).filter(|r| !r.is_empty()) else {
                break;
            };
            let n = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, rest))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for H2Guard<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            this.waker = Some(cx.waker().clone());
            this.watch.lock().waker = Some(cx.waker().clone());
        }
        if let Some(violation) = this.violation() {
            std::task::ready!(this.poll_goaway(cx))?;
            return Poll::Ready(Err(ended(violation)));
        }
        // A write still held from the last poll goes out first; one the socket cannot take
        // yet waits for it without holding up the read.
        if let Poll::Ready(Err(error)) = this.poll_write_due(cx) {
            return Poll::Ready(Err(error));
        }
        let before = buf.filled().len();
        std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            this.watch.0.reads.fetch_add(1, Ordering::Relaxed);
        }
        let Err((at, violation)) = this.inspect(buf.filled().get(before..).unwrap_or_default())
        else {
            return Poll::Ready(Ok(()));
        };
        tracing::warn!(violation = violation.describe(), "HTTP/2 connection ended");
        buf.set_filled(before + at);
        this.killed = Some(violation);
        this.watch.kill(violation);
        if at > 0 {
            // The frames before the offending one go to `h2`; the next read ends it.
            return Poll::Ready(Ok(()));
        }
        std::task::ready!(this.poll_goaway(cx))?;
        Poll::Ready(Err(ended(violation)))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for H2Guard<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mut buf = buf;
        if let Some(violation) = this.violation() {
            let left = this.outgoing.to_boundary();
            if left == 0 || this.goaway.is_some() {
                std::task::ready!(this.poll_goaway(cx))?;
                return Poll::Ready(Err(ended(violation)));
            }
            // Only the rest of the frame begun; nothing new after it.
            buf = buf.get(..left.min(buf.len())).unwrap_or_default();
        }
        this.poll_take(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.violation().is_some() {
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &**b);
            return Pin::new(this).poll_write(cx, first);
        }
        this.poll_take(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    /// `h2` flushes after every response body's DATA frame it cannot copy; held until the
    /// connection task's next poll instead, the responses its other streams finish
    /// meanwhile go out in the same write. The task wakes itself for that poll, so nothing
    /// waits for more than the tasks already queued. A flush that finds nothing new since
    /// the last one held writes at once, so a caller that never marks its polls still gets
    /// its bytes out.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.out.is_empty() {
            let grew = this.held_at != Some(this.out.len());
            if grew && this.out_epoch == this.watch.epoch() && this.out.len() < HOLD {
                if this.held_at.is_none() {
                    cx.waker().wake_by_ref();
                }
                this.held_at = Some(this.out.len());
                return Poll::Ready(Ok(()));
            }
            std::task::ready!(this.poll_write_out(cx))?;
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_write_out(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

impl GuardLimits {
    /// How often the connection's task checks [`Watch::overdue`].
    pub(crate) fn tick(&self) -> Duration {
        (self.header_read_timeout.min(self.send_timeout) / 4)
            .clamp(Duration::from_millis(50), Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn framing_finds_headers_split_across_reads() {
        let mut framing = Framing::default();
        let mut seen = Vec::new();
        let frame = [0, 0, 2, 0x6, 0, 0, 0, 0, 0, b'a', b'b'];
        for piece in [&frame[..4], &frame[4..10], &frame[10..]] {
            framing
                .advance(piece, |h| {
                    seen.push(h[3]);
                    Ok(())
                })
                .unwrap();
        }
        assert_eq!(seen, [0x6]);
        assert_eq!(framing.to_boundary(), 0);
        framing.advance(&frame[..3], |_| Ok(())).unwrap();
        assert_eq!(framing.to_boundary(), 6);
    }

    #[test]
    fn a_refused_frame_reports_where_it_began() {
        let mut framing = Framing::default();
        let two = [
            0, 0, 0, 0x4, 0, 0, 0, 0, 0, // SETTINGS
            0, 0, 0, 0x4, 0, 0, 0, 0, 0, // SETTINGS
        ];
        let mut n = 0;
        let refused = framing.advance(&two, |_| {
            n += 1;
            if n == 2 {
                Err(Violation::ControlFlood)
            } else {
                Ok(())
            }
        });
        assert_eq!(refused, Err((9, Violation::ControlFlood)));
    }

    /// A socket that keeps each write it takes as one piece, and takes none while `blocked`.
    #[derive(Default)]
    struct Socket {
        writes: Vec<Vec<u8>>,
        blocked: bool,
    }

    impl AsyncRead for Socket {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Pending
        }
    }

    impl AsyncWrite for Socket {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            if self.blocked {
                return Poll::Pending;
            }
            self.get_mut().writes.push(buf.to_vec());
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Wakes(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }

        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn guarded() -> (H2Guard<Socket>, Watch) {
        let watch = Watch::default();
        let limits = GuardLimits {
            control_frames_per_second: 100,
            resets_per_second: 100,
            header_read_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(10),
            max_refused_requests: 10,
        };
        (
            H2Guard::new(Socket::default(), watch.clone(), limits),
            watch,
        )
    }

    /// A DATA frame on `stream` with `len` bytes of payload.
    fn data(stream: u8, len: usize) -> Vec<u8> {
        let [_, l0, l1, l2] = u32::try_from(len).unwrap().to_be_bytes();
        let mut frame = vec![l0, l1, l2, 0x0, END_STREAM, 0, 0, 0, stream];
        frame.resize(FRAME_HEADER + len, b'x');
        frame
    }

    fn write(guard: &mut H2Guard<Socket>, cx: &mut Context<'_>, bytes: &[u8]) {
        let n = Pin::new(guard).poll_write(cx, bytes);
        assert!(matches!(n, Poll::Ready(Ok(n)) if n == bytes.len()), "{n:?}");
    }

    fn flush(guard: &mut H2Guard<Socket>, cx: &mut Context<'_>) {
        assert!(matches!(
            Pin::new(guard).poll_flush(cx),
            Poll::Ready(Ok(()))
        ));
    }

    /// A read of a poll in which the client sent nothing.
    fn read_nothing(guard: &mut H2Guard<Socket>, cx: &mut Context<'_>) {
        let mut space = [0u8; 64];
        let mut read = ReadBuf::new(&mut space);
        assert!(Pin::new(guard).poll_read(cx, &mut read).is_pending());
    }

    #[test]
    fn the_writes_of_one_poll_go_out_together_at_the_next() {
        let (mut guard, watch) = guarded();
        let wakes = Arc::new(Wakes::default());
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let (a, b) = (data(1, 1024), data(3, 700));
        watch.next_poll();
        write(&mut guard, &mut cx, &a);
        flush(&mut guard, &mut cx);
        write(&mut guard, &mut cx, &b);
        flush(&mut guard, &mut cx);
        assert!(
            guard.inner.writes.is_empty(),
            "nothing written within the poll"
        );
        assert_eq!(
            wakes.0.load(Ordering::Relaxed),
            1,
            "the task wakes itself once"
        );
        // The next poll: its first read sends what the last one held, in one write.
        watch.next_poll();
        read_nothing(&mut guard, &mut cx);
        assert_eq!(guard.inner.writes, [[a, b].concat()]);
        flush(&mut guard, &mut cx);
        assert_eq!(
            guard.inner.writes.len(),
            1,
            "nothing held, nothing more to write"
        );
    }

    #[test]
    fn a_flush_with_nothing_new_writes_even_without_marked_polls() {
        let (mut guard, _watch) = guarded();
        let mut cx = Context::from_waker(Waker::noop());
        let a = data(1, 300);
        write(&mut guard, &mut cx, &a);
        flush(&mut guard, &mut cx);
        assert!(guard.inner.writes.is_empty());
        flush(&mut guard, &mut cx);
        assert_eq!(guard.inner.writes, [a]);
    }

    #[test]
    fn a_large_write_goes_through_after_what_is_held() {
        let (mut guard, watch) = guarded();
        let mut cx = Context::from_waker(Waker::noop());
        watch.next_poll();
        let (small, large) = (data(1, 100), data(3, HOLD));
        write(&mut guard, &mut cx, &small);
        flush(&mut guard, &mut cx);
        write(&mut guard, &mut cx, &large);
        assert_eq!(guard.inner.writes, [small, large]);
    }

    #[test]
    fn a_full_socket_holds_the_writer_back_not_the_reader() {
        let (mut guard, watch) = guarded();
        let mut cx = Context::from_waker(Waker::noop());
        watch.next_poll();
        let a = data(1, HOLD - 100);
        write(&mut guard, &mut cx, &a);
        flush(&mut guard, &mut cx);
        guard.inner.blocked = true;
        watch.next_poll();
        read_nothing(&mut guard, &mut cx);
        // The next write waits until the bytes held from the last poll are out.
        assert!(
            Pin::new(&mut guard)
                .poll_write(&mut cx, &data(3, 200))
                .is_pending()
        );
        guard.inner.blocked = false;
        write(&mut guard, &mut cx, &data(3, 200));
        assert_eq!(guard.inner.writes, std::slice::from_ref(&a));
        assert!(matches!(
            Pin::new(&mut guard).poll_shutdown(&mut cx),
            Poll::Ready(Ok(()))
        ));
        assert_eq!(guard.inner.writes, [a, data(3, 200)]);
    }

    #[test]
    fn the_goaway_follows_what_was_held() {
        let (mut guard, watch) = guarded();
        let mut cx = Context::from_waker(Waker::noop());
        watch.next_poll();
        let a = data(1, 500);
        write(&mut guard, &mut cx, &a);
        flush(&mut guard, &mut cx);
        watch.kill(Violation::SendStall);
        let ended = Pin::new(&mut guard).poll_write(&mut cx, &data(3, 10));
        assert!(matches!(ended, Poll::Ready(Err(_))), "{ended:?}");
        let goaway = guard.goaway_frame().to_vec();
        assert_eq!(guard.inner.writes, [a, goaway]);
    }

    #[test]
    fn the_budget_refills_with_time() {
        let mut budget = Budget::new(2, Instant::now());
        assert!(budget.take());
        assert!(budget.take());
        assert!(!budget.take());
        std::thread::sleep(Duration::from_millis(600));
        assert!(budget.take());
    }
}
