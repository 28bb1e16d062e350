//! The `tokio` adapter: a [`Connection`] over any `AsyncRead + AsyncWrite` (a hyper
//! upgrade, a `TcpStream`). One future, [`WebSocket::next_message`], reads and writes at
//! once, so queued output (pongs, broadcasts) drains while the task waits for input, and
//! it is cancel-safe for use in `tokio::select!`.
//!
//! ```no_run
//! # async fn run(stream: tokio::net::TcpStream, deflate: Option<ws_core::DeflateParams>) {
//! use ws_core::{Connection, Limits, Message, WebSocket};
//! let mut ws = WebSocket::new(stream, Connection::new(Limits::default(), deflate));
//! while let Some(Ok(message)) = ws.next_message().await {
//!     if message.is_text() || message.is_binary() {
//!         // Queue the echo; it is written while waiting for the next message.
//!         if ws.queue(message).is_err() { break; }
//!     }
//! }
//! # }
//! ```

use std::future::poll_fn;
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};
use tungstenite::Message;
use tungstenite::protocol::frame::coding::CloseCode;

use crate::connection::Connection;
use crate::error::{Error, Result};

/// Largest read buffer the adapter grows to under load: over 128 KiB, so that two pipelined
/// 64 KiB messages with their headers (131,100 bytes) fit in the buffer a read goes to,
/// rather than the second being moved to a new allocation when its last bytes arrive. It
/// shrinks back when reads use a quarter of it or less.
const MAX_READ_CHUNK: usize = 256 * 1024;

/// Largest empty read buffer a connection keeps while it waits for input, for the next
/// burst of small messages. A larger one (or any, once reads pass this size) is given back:
/// with many connections a buffer kept per connection is out of the CPU cache by its next
/// burst (1,000 connections reading 64 KiB messages keep 256 MiB), while one handed back is
/// handed out again, still cached, to the next connection that reads, so the kernel's copy
/// into it is cheaper (and few pages are faulted in: one set serves many connections).
const KEEP_READ_BUFFER: usize = 64 * 1024;

/// Frames at least this long (header included), when partly received, are read into the
/// room the buffer has for their rest instead of a fresh chunk (see `poll_next`).
const LARGE_FRAME: usize = 16 * 1024;

/// Queued output at which the adapter writes before delivering more buffered messages
/// (the replies to a burst of pipelined messages otherwise wait for the burst's end). Over
/// 128 KiB, so that the replies to two pipelined 64 KiB messages leave in one vectored
/// write rather than one system call each.
const WRITE_BATCH: usize = 256 * 1024;

/// Most chunks of queued output handed to one vectored write.
const MAX_WRITE_SLICES: usize = 32;

/// A WebSocket connection over a tokio stream.
#[derive(Debug)]
pub struct WebSocket<S> {
    io: S,
    conn: Connection,
    chunk: usize,
    failed: Option<Error>,
    done: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Wraps an upgraded stream.
    pub fn new(io: S, mut conn: Connection) -> Self {
        conn.keep_read_buffer();
        let chunk = conn.limits().read_buffer.max(64);
        Self {
            io,
            conn,
            chunk,
            failed: None,
            done: false,
        }
    }

    /// The protocol state.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Queues a message without waiting; it is written by the next
    /// [`next_message`](Self::next_message) or [`flush`](Self::flush).
    ///
    /// # Errors
    ///
    /// As [`Connection::send`]: the send buffer is full, or the connection is closing.
    pub fn queue(&mut self, message: Message) -> Result<()> {
        self.conn.send(message)
    }

    /// Whether queued output is below the send limit (room for more). A message may
    /// still be refused when it does not fit in what is left: ask
    /// [`has_room_for`](Self::has_room_for) with its length before taking it from a
    /// queue of one's own.
    pub fn has_room(&self) -> bool {
        self.conn.pending_len() < self.conn.limits().max_send_buffer
    }

    /// Whether a data message of `len` payload bytes would be queued now (see
    /// [`Connection::has_room_for`]); when it would not, [`flush`](Self::flush) makes room.
    pub fn has_room_for(&self, len: usize) -> bool {
        self.conn.has_room_for(len)
    }

    /// Queues a message if it fits in what is left of the send buffer, or keeps it in
    /// `held` to be offered again after [`flush`](Self::flush) makes room (`held` must be
    /// empty). An application moving messages from a queue of its own loses none that way:
    /// while `held` is full, it flushes instead of taking more.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after a close was sent; a compression error.
    pub fn queue_or_hold(&mut self, message: Message, held: &mut Option<Message>) -> Result<()> {
        let data = match &message {
            Message::Text(text) => Some(text.len()),
            Message::Binary(data) => Some(data.len()),
            _ => None,
        };
        if let Some(len) = data
            && !self.conn.has_room_for(len)
        {
            *held = Some(message);
            return Ok(());
        }
        self.conn.send(message)
    }

    /// Queues a message and writes everything queued.
    ///
    /// # Errors
    ///
    /// As [`queue`](Self::queue), or an IO error.
    pub async fn send(&mut self, message: Message) -> Result<()> {
        self.conn.send(message)?;
        self.flush().await
    }

    /// Writes everything queued.
    ///
    /// # Errors
    ///
    /// An IO error.
    pub async fn flush(&mut self) -> Result<()> {
        poll_fn(|cx| self.poll_write_pending(cx)).await
    }

    /// Starts the close handshake; keep calling [`next_message`](Self::next_message) until
    /// it returns `None` to finish it.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] if a close was already sent.
    pub fn start_close(&mut self, code: CloseCode, reason: &str) -> Result<()> {
        self.conn.close(code, reason)
    }

    /// The next message, writing queued output meanwhile. `None` once the connection is
    /// over (close handshake done, or the peer went away); an `Err` is reported once, after
    /// the close frame for it was written.
    pub async fn next_message(&mut self) -> Option<Result<Message>> {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    fn poll_write_pending(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        while self.conn.pending_len() != 0 {
            // Large payloads are queued apart from the small frames around them: one
            // vectored write sends them all without copying the payloads together.
            let mut slices = [IoSlice::new(&[]); MAX_WRITE_SLICES];
            let filled = self.conn.pending_chunks(&mut slices);
            let io = Pin::new(&mut self.io);
            let written = if filled > 1 && io.is_write_vectored() {
                io.poll_write_vectored(cx, slices.get(..filled).unwrap_or_default())
            } else {
                io.poll_write(cx, self.conn.pending())
            };
            match written {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(Error::Io(std::io::ErrorKind::WriteZero.into())));
                }
                Poll::Ready(Ok(n)) => self.conn.advance(n),
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error.into())),
                Poll::Pending => return Poll::Pending,
            }
        }
        Pin::new(&mut self.io).poll_flush(cx).map_err(Error::from)
    }

    fn finish(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message>>> {
        // The server closes the TCP connection first (RFC 6455 section 7.1.1).
        match Pin::new(&mut self.io).poll_shutdown(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(_) => {}
        }
        self.done = true;
        Poll::Ready(self.failed.take().map(Err))
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message>>> {
        if self.done {
            return Poll::Ready(None);
        }
        loop {
            if self.failed.is_none() && self.conn.is_reading() {
                // Messages already read are delivered before queued output is written, so
                // the replies to a burst of pipelined messages go out in one write rather
                // than one system call each; a large backlog is written first to bound it.
                if self.conn.pending_len() >= WRITE_BATCH
                    && let Poll::Ready(Err(error)) = self.poll_write_pending(cx)
                {
                    self.done = true;
                    return Poll::Ready(Some(Err(error)));
                }
                match self.conn.poll_message() {
                    Ok(Some(message)) => return Poll::Ready(Some(Ok(message))),
                    Ok(None) => {}
                    Err(error) => {
                        self.failed = Some(error);
                        continue;
                    }
                }
            }
            // Nothing complete is buffered. A connection that no longer reads, or whose
            // peer does not read what is queued, only writes.
            if !self.conn.is_reading() || !self.has_room() {
                let flushed = match self.poll_write_pending(cx) {
                    Poll::Ready(Ok(())) => true,
                    Poll::Ready(Err(error)) => {
                        self.done = true;
                        return Poll::Ready(Some(Err(error)));
                    }
                    Poll::Pending => false,
                };
                if !self.conn.is_reading() {
                    if flushed {
                        return self.finish(cx);
                    }
                    return Poll::Pending;
                }
                // Backpressure: a peer that does not read stops being read.
                if !self.has_room() {
                    return Poll::Pending;
                }
            }
            // Read before writing: when more of a pipelined burst has arrived, its replies
            // join the ones queued and go out in the same write. Queued output is written
            // when the read would block, before the task sleeps (a write that would block
            // registers the waker too).
            // Every buffered byte is delivered: write the replies first when large payloads
            // are queued. They share the read buffer's allocation, so once they are written
            // the reserve below reuses it, instead of moving to a fresh allocation (whose
            // pages the kernel faults in) while the replies wait.
            if self.conn.read_buffer().is_empty()
                && self.conn.pending_len() >= LARGE_FRAME
                && let Poll::Ready(Err(error)) = self.poll_write_pending(cx)
            {
                self.done = true;
                return Poll::Ready(Some(Err(error)));
            }
            let chunk = self.chunk;
            // A large frame partly received is read into the room the buffer already has
            // for its rest (the parser reserved it). Reserving a whole chunk beyond that
            // would move the part to a new allocation whenever the messages before it are
            // still queued for writing (they share the allocation): a copy of up to a
            // whole frame. Small frames keep reading whole chunks, so a buffer with little
            // room left is not read a few hundred bytes at a time.
            let rest = match self.conn.incomplete_frame() {
                Some((len, missing)) if len >= LARGE_FRAME => Some(missing),
                _ => None,
            };
            let buffer = self.conn.read_buffer();
            // Reads go into spare capacity (no zeroing); the adaptive chunk keeps an idle
            // connection's buffer small.
            buffer.reserve(rest.unwrap_or(chunk));
            match tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, buffer) {
                Poll::Ready(Ok(0)) => {
                    // EOF without a close frame: abnormal closure (1006), nothing to send.
                    self.done = true;
                    return Poll::Ready(None);
                }
                // A read bounded by a frame's rest says nothing about the chunk size.
                Poll::Ready(Ok(_)) if rest.is_some() => {}
                Poll::Ready(Ok(n)) => {
                    // Grow the chunk while reads fill it; shrink it back only when they use a
                    // quarter of it or less. Halving after any read that did not fill it
                    // settled below a burst's size (131,100 bytes for two 64 KiB messages
                    // read as 128 KiB), so the burst's last frame straddled two reads.
                    self.chunk = if n >= chunk {
                        (chunk * 2).min(MAX_READ_CHUNK)
                    } else if n <= chunk / 4 {
                        self.conn.limits().read_buffer.max(64).max(chunk / 2)
                    } else {
                        chunk
                    };
                }
                Poll::Ready(Err(error)) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(error.into())));
                }
                Poll::Pending => {
                    if let Poll::Ready(Err(error)) = self.poll_write_pending(cx) {
                        self.done = true;
                        return Poll::Ready(Some(Err(error)));
                    }
                    // Waiting for input: a large empty buffer goes back to the allocator
                    // (once the replies sharing it are written); a small one is kept.
                    let large = self.chunk > KEEP_READ_BUFFER;
                    let buffer = self.conn.read_buffer();
                    if buffer.is_empty() && (large || buffer.capacity() > KEEP_READ_BUFFER) {
                        *buffer = BytesMut::new();
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::Limits;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A masked client text frame of `len` bytes of `a`.
    fn client_frame(len: usize) -> Vec<u8> {
        let mut out = vec![0x81];
        match len {
            0..126 => out.push(0x80 | len as u8),
            126..65536 => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.resize(out.len() + len, b'a');
        out
    }

    #[tokio::test]
    async fn a_message_that_does_not_fit_is_held_and_queued_after_a_flush() {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let limits = Limits {
            max_send_buffer: 1000,
            ..Limits::default()
        };
        let mut ws = WebSocket::new(server, Connection::new(limits, None));
        let mut held = None;
        ws.queue_or_hold(Message::binary(vec![1u8; 600]), &mut held)
            .unwrap();
        assert!(held.is_none());
        assert!(ws.has_room(), "under the limit");
        // 600 queued + 500 would pass 1000: kept, not refused, nothing queued.
        let before = ws.connection().pending_len();
        ws.queue_or_hold(Message::binary(vec![2u8; 500]), &mut held)
            .unwrap();
        assert_eq!(held.as_ref().map(Message::len), Some(500));
        assert_eq!(ws.connection().pending_len(), before);
        ws.flush().await.unwrap();
        let message = held.take().unwrap();
        ws.queue_or_hold(message, &mut held).unwrap();
        assert!(held.is_none(), "queued once the buffer was written");
        ws.flush().await.unwrap();
        let mut wire = vec![0u8; 4 + 600 + 4 + 500];
        client.read_exact(&mut wire).await.unwrap();
        assert_eq!(wire[4 + 600 + 4], 2, "the held message followed the first");
    }

    /// Echoes `bursts` bursts of two `len`-byte messages, polling once more after each
    /// (nothing to read: the connection waits). Returns whether the read buffer still points
    /// into the allocation the last burst's payloads were read into, and its capacity.
    async fn read_buffer_kept_after(bursts: usize, len: usize) -> (bool, usize) {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let mut ws = WebSocket::new(server, Connection::new(Limits::default(), None));
        let mut burst = client_frame(len);
        burst.extend(client_frame(len));
        let mut echoes = vec![0u8; 2 * (len + if len < 65536 { 4 } else { 10 })];
        let mut read_into = 0..0;
        for _ in 0..bursts {
            client.write_all(&burst).await.unwrap();
            let mut payloads = Vec::new();
            for _ in 0..2 {
                let message = ws.next_message().await.unwrap().unwrap();
                assert_eq!(message.len(), len);
                payloads.push(message.into_data().as_ptr() as usize);
                ws.queue(Message::text("a".repeat(len))).unwrap();
            }
            read_into = payloads[0]..payloads[1] + len;
            let waiting = poll_fn(|cx| Poll::Ready(ws.poll_next(cx).is_pending())).await;
            assert!(waiting, "no input: the connection waits");
            assert_eq!(ws.connection().pending_len(), 0, "the echoes were written");
            client.read_exact(&mut echoes).await.unwrap();
        }
        let buffer = ws.conn.read_buffer();
        let at = buffer.as_ptr() as usize;
        (
            read_into.contains(&at) || at == read_into.end,
            buffer.capacity(),
        )
    }

    #[tokio::test]
    async fn a_connection_waiting_after_large_messages_gives_its_read_buffer_back() {
        // Enough bursts for reads to grow past KEEP_READ_BUFFER.
        let (kept, capacity) = read_buffer_kept_after(12, 65_536).await;
        assert!(
            !kept,
            "the buffer the messages were read into was given back"
        );
        assert_eq!(capacity, 0);
    }

    #[tokio::test]
    async fn a_connection_waiting_after_small_messages_keeps_its_read_buffer() {
        let (_, capacity) = read_buffer_kept_after(3, 1024).await;
        assert!(capacity > 0, "kept for the next burst");
    }
}
