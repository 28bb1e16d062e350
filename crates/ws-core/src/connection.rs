//! The server side of one WebSocket connection as a sans-IO state machine: bytes in with
//! [`Connection::feed`], messages out of [`Connection::poll_message`], frames to write from
//! [`Connection::pending`] (or [`Connection::pending_chunks`] for a vectored write). Frames are parsed and formatted with tungstenite's frame layer
//! (`FrameHeader`); messages, limits, permessage-deflate and the close handshake live here.
//!
//! ```
//! use ws_core::{Connection, Limits, Message};
//! let mut conn = Connection::new(Limits::default(), None);
//! // A masked text frame "Hi" from a client (RFC 6455 section 5.7).
//! conn.feed(&[0x81, 0x82, 1, 2, 3, 4, b'H' ^ 1, b'i' ^ 2]);
//! assert_eq!(conn.poll_message().unwrap(), Some(Message::text("Hi")));
//! conn.send(Message::text("Hi")).unwrap();
//! assert_eq!(conn.pending(), &[0x81, 0x02, b'H', b'i']);
//! ```

use std::collections::VecDeque;
use std::io::{Cursor, IoSlice};

use bytes::{Buf, Bytes, BytesMut};
use tungstenite::Message;
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};
use tungstenite::protocol::frame::{FrameHeader, Utf8Bytes};

use crate::deflate::{Codec, DeflateParams};
use crate::error::{Error, Result};

/// Payloads at least this long are queued by reference and written from where they are
/// (a vectored write of the frame header and the payload) instead of being copied into the
/// send buffer; shorter ones are copied, so the frames of a burst leave in one buffer.
const SHARED_PAYLOAD: usize = 8 * 1024;

/// Size limits of one connection. The defaults suit chat-like traffic; raise them for
/// bulk transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest payload of one frame (default 1 MiB); larger frames close with 1009
    /// before their payload is read.
    pub max_frame: usize,
    /// Largest message after reassembly and inflation (default 1 MiB); close 1009.
    pub max_message: usize,
    /// Bytes that may wait to be written; [`Connection::send`] refuses more with
    /// [`Error::SendBufferFull`] (default 1 MiB). One message is always accepted
    /// into an empty buffer, so a message up to `max_message` can always be echoed.
    pub max_send_buffer: usize,
    /// Smallest read buffer an IO adapter uses; it grows under load and shrinks back
    /// once reads are small again (default 512 bytes).
    pub read_buffer: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame: 1 << 20,
            max_message: 1 << 20,
            max_send_buffer: 1 << 20,
            read_buffer: 512,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// We sent a close frame and wait for the peer's.
    CloseSent,
    /// Both close frames are exchanged or the connection failed: nothing is read any more.
    Closed,
}

/// A message being reassembled from fragments.
#[derive(Debug)]
struct Partial {
    text: bool,
    compressed: bool,
    data: Vec<u8>,
    /// Bytes of `data` known to be valid UTF-8 (text only): invalid text fails fast,
    /// at the fragment that breaks it.
    checked: usize,
}

/// One server-side WebSocket connection (RFC 6455), without IO.
#[derive(Debug)]
pub struct Connection {
    limits: Limits,
    codec: Option<Codec>,
    read: BytesMut,
    /// Length of the frame at the front of `read` (header included) while part of it is
    /// still missing; 0 otherwise.
    incomplete: usize,
    /// Output queued before `out`: runs of small frames and large payloads, in order.
    chunks: VecDeque<Bytes>,
    /// Total length of `chunks`.
    chunked: usize,
    /// The last run of small frames (and headers of large ones), copied together.
    out: BytesMut,
    partial: Option<Partial>,
    state: State,
    /// Set by an IO adapter that decides itself when to give an empty read buffer back
    /// (see `release_read_buffer`); otherwise `poll_message` does it.
    adapter_owns_read_buffer: bool,
}

impl Connection {
    /// A connection after a successful handshake; `deflate` comes from
    /// [`Accepted::deflate`](crate::Accepted::deflate).
    pub fn new(limits: Limits, deflate: Option<DeflateParams>) -> Self {
        Self {
            limits,
            codec: deflate.map(Codec::new),
            read: BytesMut::new(),
            incomplete: 0,
            chunks: VecDeque::new(),
            chunked: 0,
            out: BytesMut::new(),
            partial: None,
            state: State::Open,
            adapter_owns_read_buffer: false,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The negotiated permessage-deflate parameters, if any.
    pub fn deflate(&self) -> Option<&DeflateParams> {
        self.codec.as_ref().map(Codec::params)
    }

    /// Appends bytes read from the transport.
    pub fn feed(&mut self, data: &[u8]) {
        if self.state != State::Closed {
            self.read.extend_from_slice(data);
        }
    }

    /// The read buffer, for adapters that read straight into it.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn read_buffer(&mut self) -> &mut BytesMut {
        &mut self.read
    }

    /// Leaves giving back an empty read buffer to the adapter, which knows when the
    /// connection waits for input (rather than [`poll_message`](Self::poll_message) doing it
    /// whenever it needs more bytes, while the replies sharing the buffer may still wait).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn keep_read_buffer(&mut self) {
        self.adapter_owns_read_buffer = true;
    }

    /// Gives back the read buffer's allocation when it is empty and over 64 KiB.
    fn release_read_buffer(&mut self) {
        if self.read.is_empty() && self.read.capacity() > 64 * 1024 {
            self.read = BytesMut::new();
        }
    }

    /// The frame partly received at the front of the read buffer: its whole length (header
    /// included) and the bytes still missing, or `None` when no frame header is pending.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn incomplete_frame(&self) -> Option<(usize, usize)> {
        let missing = self.incomplete.checked_sub(self.read.len())?;
        (missing > 0).then_some((self.incomplete, missing))
    }

    /// Whether the connection still reads (it stops after the close handshake or a failure).
    pub fn is_reading(&self) -> bool {
        self.state != State::Closed
    }

    /// Whether the connection is finished: closed and every byte written. The transport
    /// should be shut down then (the server closes TCP first, RFC 6455 section 7.1.1).
    pub fn is_finished(&self) -> bool {
        self.state == State::Closed && self.pending_len() == 0
    }

    /// The next bytes waiting to be written to the transport: the first of the queued
    /// chunks (large payloads are queued apart rather than copied). Write them,
    /// [`advance`](Self::advance), and call again until it is empty.
    pub fn pending(&self) -> &[u8] {
        self.chunks
            .front()
            .map_or(&self.out[..], |chunk| &chunk[..])
    }

    /// All bytes waiting to be written, in every chunk.
    pub fn pending_len(&self) -> usize {
        self.chunked + self.out.len()
    }

    /// Fills `dst` with the queued chunks in order, for a vectored write, and returns how
    /// many it filled (as many as fit).
    pub fn pending_chunks<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let chunks = self.chunks.iter().map(|chunk| &chunk[..]);
        let last = (!self.out.is_empty()).then_some(&self.out[..]);
        let mut filled = 0;
        for (slot, bytes) in dst.iter_mut().zip(chunks.chain(last)) {
            *slot = IoSlice::new(bytes);
            filled += 1;
        }
        filled
    }

    /// Marks `n` pending bytes as written.
    pub fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let Some(chunk) = self.chunks.front_mut() else {
                self.out.advance(n.min(self.out.len()));
                break;
            };
            let step = n.min(chunk.len());
            chunk.advance(step);
            self.chunked -= step;
            n -= step;
            if chunk.is_empty() {
                self.chunks.pop_front();
            }
        }
        if self.out.is_empty() && self.out.capacity() > 64 * 1024 {
            self.out = BytesMut::new();
        }
    }

    /// Parses buffered bytes into the next message. Pings are answered here (a pong is
    /// queued) and are returned too, as are pongs and the peer's close. `Ok(None)` means
    /// more bytes are needed.
    ///
    /// # Errors
    ///
    /// A protocol violation, invalid UTF-8 or a limit: the connection queues a close frame
    /// with the matching code ([`Error::close_code`]) and stops reading.
    pub fn poll_message(&mut self) -> Result<Option<Message>> {
        loop {
            if self.state == State::Closed {
                return Ok(None);
            }
            match self.next_frame() {
                Ok(Some(Some(message))) => return Ok(Some(message)),
                Ok(Some(None)) => continue,
                Ok(None) => {
                    if !self.adapter_owns_read_buffer {
                        self.release_read_buffer();
                    }
                    return Ok(None);
                }
                Err(error) => {
                    self.fail(&error);
                    return Err(error);
                }
            }
        }
    }

    /// Queues a message. Text and binary messages are compressed when deflate was
    /// negotiated and the message is long enough. Sending [`Message::Close`] starts the
    /// close handshake.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after a close was sent, [`Error::SendBufferFull`] when the peer
    /// is not reading, [`Error::Protocol`] for a control payload over 125 bytes.
    pub fn send(&mut self, message: Message) -> Result<()> {
        if self.state != State::Open {
            return Err(Error::Closed);
        }
        match message {
            Message::Text(text) => self.send_data(OpCode::Data(Data::Text), text.into()),
            Message::Binary(data) => self.send_data(OpCode::Data(Data::Binary), data),
            Message::Ping(data) => self.send_control(Control::Ping, &data),
            Message::Pong(data) => self.send_control(Control::Pong, &data),
            Message::Close(frame) => {
                let payload = close_payload(frame.as_ref());
                self.send_control(Control::Close, &payload)?;
                self.state = State::CloseSent;
                Ok(())
            }
            Message::Frame(_) => Err(Error::Protocol("raw frames cannot be sent")),
        }
    }

    /// Starts the close handshake with `code` and `reason` (truncated to fit 123 bytes).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] if a close was already sent.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<()> {
        let reason = truncate_utf8(reason, 123);
        self.send(Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from(reason),
        })))
    }

    /// Whether a data message of `len` payload bytes would be queued now: queued output
    /// plus `len` within [`Limits::max_send_buffer`], or nothing queued (one message of
    /// any size is always taken). [`send`](Self::send) refuses with
    /// [`Error::SendBufferFull`] exactly when this is `false`; control frames are not
    /// bounded by it.
    pub fn has_room_for(&self, len: usize) -> bool {
        let queued = self.pending_len();
        queued == 0 || queued.saturating_add(len) <= self.limits.max_send_buffer
    }

    /// Room for one more queued frame of `len` payload bytes.
    fn check_room(&self, len: usize) -> Result<()> {
        let queued = self.pending_len();
        if !self.has_room_for(len) {
            return Err(Error::SendBufferFull {
                queued,
                limit: self.limits.max_send_buffer,
            });
        }
        Ok(())
    }

    fn send_data(&mut self, opcode: OpCode, payload: Bytes) -> Result<()> {
        self.check_room(payload.len())?;
        let compressed = match &mut self.codec {
            Some(codec) if codec.wants(payload.len()) => {
                let mut wire = Vec::new();
                codec.compress(&payload, &mut wire)?;
                Some(Bytes::from(wire))
            }
            _ => None,
        };
        let header = FrameHeader {
            is_final: true,
            rsv1: compressed.is_some(),
            rsv2: false,
            rsv3: false,
            opcode,
            mask: None,
        };
        let body = compressed.unwrap_or(payload);
        if body.len() < SHARED_PAYLOAD {
            return self.write_frame(&header, &body);
        }
        // A large payload is written from where it is: the header joins the small frames
        // before it, the payload follows as its own chunk.
        self.write_header(&header, body.len())?;
        self.chunks.push_back(self.out.split().freeze());
        self.chunked += self.chunks.back().map_or(0, Bytes::len);
        self.chunked += body.len();
        self.chunks.push_back(body);
        Ok(())
    }

    fn send_control(&mut self, control: Control, payload: &[u8]) -> Result<()> {
        if payload.len() > 125 {
            return Err(Error::Protocol("control frame payload over 125 bytes"));
        }
        let header = FrameHeader {
            is_final: true,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode: OpCode::Control(control),
            mask: None,
        };
        self.write_frame(&header, payload)
    }

    fn write_frame(&mut self, header: &FrameHeader, payload: &[u8]) -> Result<()> {
        self.out
            .reserve(header.len(payload.len() as u64) + payload.len());
        self.write_header(header, payload.len())?;
        self.out.extend_from_slice(payload);
        Ok(())
    }

    fn write_header(&mut self, header: &FrameHeader, len: usize) -> Result<()> {
        let mut writer = bytes::BufMut::writer(&mut self.out);
        header
            .format(len as u64, &mut writer)
            .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))
    }

    /// Queues a close frame for a failure and stops reading (RFC 6455 section 7.1.7).
    fn fail(&mut self, error: &Error) {
        if self.state == State::Open
            && let Some(code) = error.close_code()
        {
            let payload = close_payload(Some(&CloseFrame {
                code,
                reason: Utf8Bytes::from(truncate_utf8(&error.to_string(), 123)),
            }));
            // A failing connection may exceed the send bound by one close frame.
            let header = FrameHeader {
                opcode: OpCode::Control(Control::Close),
                ..FrameHeader::default()
            };
            let _ = self.write_frame(&header, &payload);
        }
        self.state = State::Closed;
        self.partial = None;
        self.read = BytesMut::new();
        self.incomplete = 0;
    }

    /// One frame: `Ok(None)` needs more bytes, `Ok(Some(None))` consumed a frame that
    /// completed no message.
    fn next_frame(&mut self) -> Result<Option<Option<Message>>> {
        let mut cursor = Cursor::new(self.read.as_ref());
        self.incomplete = 0;
        let Some((header, length)) = FrameHeader::parse(&mut cursor)
            .map_err(|_| Error::Protocol("reserved opcode or malformed frame header"))?
        else {
            return Ok(None);
        };
        let header_len = usize::try_from(cursor.position()).unwrap_or(usize::MAX);
        self.check_header(&header, length)?;
        // check_header bounded `length` by max_frame, which is a usize.
        let length = usize::try_from(length).unwrap_or(usize::MAX);
        let total = header_len.saturating_add(length);
        if self.read.len() < total {
            self.incomplete = total;
            self.read.reserve(total - self.read.len());
            return Ok(None);
        }
        let mut frame = self.read.split_to(total);
        frame.advance(header_len);
        if let Some(mask) = header.mask {
            apply_mask(&mut frame, mask);
        }
        let payload = frame.freeze();
        match header.opcode {
            OpCode::Control(control) => self.on_control(control, payload),
            OpCode::Data(data) => self.on_data(&header, data, payload),
        }
    }

    /// Everything that can be decided from the header alone, before buffering the payload.
    fn check_header(&self, header: &FrameHeader, length: u64) -> Result<()> {
        // RFC 6455 section 5.1: a server MUST close on an unmasked client frame.
        if header.mask.is_none() {
            return Err(Error::Protocol("unmasked client frame"));
        }
        // Section 5.2: RSV bits without an extension that defines them. RFC 7692 section
        // 6 gives RSV1 to permessage-deflate on the first frame of a data message.
        if header.rsv2 || header.rsv3 {
            return Err(Error::Protocol("reserved bits set"));
        }
        match header.opcode {
            OpCode::Control(_) => {
                if header.rsv1 {
                    return Err(Error::Protocol("RSV1 on a control frame"));
                }
                // Section 5.5: control frames are not fragmented and carry at most 125 bytes.
                if !header.is_final {
                    return Err(Error::Protocol("fragmented control frame"));
                }
                if length > 125 {
                    return Err(Error::Protocol("control frame payload over 125 bytes"));
                }
            }
            OpCode::Data(data) => {
                if length > self.limits.max_frame as u64 {
                    return Err(Error::FrameTooLarge {
                        size: length,
                        limit: self.limits.max_frame,
                    });
                }
                match (data, &self.partial) {
                    (Data::Continue, None) => {
                        return Err(Error::Protocol("continuation frame without a message"));
                    }
                    (Data::Continue, Some(_)) if header.rsv1 => {
                        return Err(Error::Protocol("RSV1 on a continuation frame"));
                    }
                    (Data::Text | Data::Binary, Some(_)) => {
                        return Err(Error::Protocol("new message inside a fragmented one"));
                    }
                    _ => {}
                }
                if header.rsv1 && self.codec.is_none() {
                    return Err(Error::Protocol("RSV1 set without permessage-deflate"));
                }
                let so_far = self.partial.as_ref().map_or(0, |p| p.data.len());
                let compressed = header.rsv1 || self.partial.as_ref().is_some_and(|p| p.compressed);
                if !compressed
                    && (so_far as u64).saturating_add(length) > self.limits.max_message as u64
                {
                    return Err(Error::MessageTooLarge {
                        limit: self.limits.max_message,
                    });
                }
            }
        }
        Ok(())
    }

    fn on_control(&mut self, control: Control, payload: Bytes) -> Result<Option<Option<Message>>> {
        match control {
            Control::Ping => {
                // Section 5.5.3: a pong may be skipped while earlier output is unread, which
                // keeps a peer that pings without reading from growing our buffer.
                if self.state == State::Open && self.check_room(payload.len()).is_ok() {
                    self.send_control(Control::Pong, &payload)?;
                }
                Ok(Some(Some(Message::Ping(payload))))
            }
            Control::Pong => Ok(Some(Some(Message::Pong(payload)))),
            Control::Close => {
                let frame = parse_close(&payload)?;
                if self.state == State::Open {
                    // Section 5.5.1: answer with a close, echoing the code.
                    let reply = frame.as_ref().map(|f| CloseFrame {
                        code: f.code,
                        reason: Utf8Bytes::default(),
                    });
                    let header = FrameHeader {
                        opcode: OpCode::Control(Control::Close),
                        ..FrameHeader::default()
                    };
                    self.write_frame(&header, &close_payload(reply.as_ref()))?;
                }
                self.state = State::Closed;
                self.partial = None;
                self.read = BytesMut::new();
                self.incomplete = 0;
                Ok(Some(Some(Message::Close(frame))))
            }
            Control::Reserved(_) => Err(Error::Protocol("reserved control opcode")),
        }
    }

    fn on_data(
        &mut self,
        header: &FrameHeader,
        data: Data,
        payload: Bytes,
    ) -> Result<Option<Option<Message>>> {
        let limit = self.limits.max_message;
        // The common case: one uncompressed frame is one message, without a copy.
        if header.is_final && !header.rsv1 && self.partial.is_none() {
            return Ok(Some(Some(match data {
                Data::Text => {
                    Message::Text(Utf8Bytes::try_from(payload).map_err(|_| Error::InvalidUtf8)?)
                }
                _ => Message::Binary(payload),
            })));
        }
        let mut partial = match self.partial.take() {
            Some(partial) => partial,
            None => Partial {
                text: data == Data::Text,
                compressed: header.rsv1,
                data: Vec::new(),
                checked: 0,
            },
        };
        if partial.compressed {
            let codec = self
                .codec
                .as_mut()
                .ok_or(Error::Protocol("RSV1 set without permessage-deflate"))?;
            codec.inflate(&payload, header.is_final, &mut partial.data, limit)?;
        } else {
            partial.data.extend_from_slice(&payload);
        }
        if partial.text {
            let rest = partial.data.get(partial.checked..).unwrap_or_default();
            match std::str::from_utf8(rest) {
                Ok(_) => partial.checked = partial.data.len(),
                Err(e) if e.error_len().is_some() => return Err(Error::InvalidUtf8),
                Err(e) => partial.checked += e.valid_up_to(),
            }
        }
        if !header.is_final {
            self.partial = Some(partial);
            return Ok(Some(None));
        }
        Ok(Some(Some(if partial.text {
            Message::Text(
                String::from_utf8(partial.data)
                    .map_err(|_| Error::InvalidUtf8)?
                    .into(),
            )
        } else {
            Message::Binary(partial.data.into())
        })))
    }
}

/// Parses a close payload (RFC 6455 section 5.5.1, 7.4): empty, or a valid code and a
/// UTF-8 reason.
fn parse_close(payload: &[u8]) -> Result<Option<CloseFrame>> {
    match payload {
        [] => Ok(None),
        [_] => Err(Error::Protocol("close payload of one byte")),
        [high, low, reason @ ..] => {
            let code = CloseCode::from(u16::from_be_bytes([*high, *low]));
            if !code.is_allowed() {
                return Err(Error::Protocol("invalid close code"));
            }
            let reason = std::str::from_utf8(reason).map_err(|_| Error::InvalidUtf8)?;
            Ok(Some(CloseFrame {
                code,
                reason: Utf8Bytes::from(reason),
            }))
        }
    }
}

fn close_payload(frame: Option<&CloseFrame>) -> Vec<u8> {
    match frame {
        None => Vec::new(),
        Some(frame) => {
            let code: u16 = frame.code.into();
            let mut payload = code.to_be_bytes().to_vec();
            payload.extend_from_slice(truncate_utf8(&frame.reason, 123).as_bytes());
            payload
        }
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a char boundary.
fn truncate_utf8(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

/// XORs the payload with the client's masking key (RFC 6455 section 5.3), 32 bytes at a
/// time: a fixed-length inner loop the compiler turns into vector XORs.
pub(crate) fn apply_mask(buf: &mut [u8], mask: [u8; 4]) {
    let mut key = [0u8; 32];
    for (byte, mask) in key.iter_mut().zip(mask.iter().cycle()) {
        *byte = *mask;
    }
    let mut chunks = buf.chunks_exact_mut(32);
    for chunk in &mut chunks {
        for (byte, key) in chunk.iter_mut().zip(key.iter()) {
            *byte ^= key;
        }
    }
    for (byte, key) in chunks.into_remainder().iter_mut().zip(mask.iter().cycle()) {
        *byte ^= key;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;

    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// A masked client frame.
    fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![first];
        let len = payload.len();
        if len < 126 {
            out.push(0x80 | len as u8);
        } else if len < 65536 {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        out.extend_from_slice(&MASK);
        let mut body = payload.to_vec();
        apply_mask(&mut body, MASK);
        out.extend_from_slice(&body);
        out
    }

    fn close_code_sent(conn: &Connection) -> u16 {
        let out = conn.pending();
        assert_eq!(out[0], 0x88, "a close frame was queued: {out:?}");
        u16::from_be_bytes([out[2], out[3]])
    }

    #[test]
    fn rfc_masked_hello() {
        // RFC 6455 section 5.7: a single-frame masked text message "Hello".
        let mut conn = Connection::new(Limits::default(), None);
        conn.feed(&[
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ]);
        assert_eq!(conn.poll_message().unwrap(), Some(Message::text("Hello")));
    }

    #[test]
    fn fragments_and_byte_at_a_time_feeding() {
        let mut conn = Connection::new(Limits::default(), None);
        let mut wire = frame(0x01, b"Hel");
        wire.extend(frame(0x89, b"ping"));
        wire.extend(frame(0x80, b"lo"));
        let mut got = Vec::new();
        for byte in wire {
            conn.feed(&[byte]);
            while let Some(message) = conn.poll_message().unwrap() {
                got.push(message);
            }
        }
        assert_eq!(
            got,
            vec![Message::Ping("ping".into()), Message::text("Hello")]
        );
        assert_eq!(conn.pending(), &[0x8a, 4, b'p', b'i', b'n', b'g']);
    }

    #[test]
    fn invalid_utf8_fails_fast_with_1007() {
        let mut conn = Connection::new(Limits::default(), None);
        conn.feed(&frame(
            0x01,
            &[
                0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80,
            ],
        ));
        assert!(matches!(conn.poll_message(), Err(Error::InvalidUtf8)));
        assert_eq!(close_code_sent(&conn), 1007);
        assert!(!conn.is_reading());
    }

    #[test]
    fn unmasked_frame_is_1002() {
        let mut conn = Connection::new(Limits::default(), None);
        conn.feed(&[0x81, 0x02, b'h', b'i']);
        assert!(matches!(conn.poll_message(), Err(Error::Protocol(_))));
        assert_eq!(close_code_sent(&conn), 1002);
    }

    #[test]
    fn fragmented_ping_is_1002() {
        let mut conn = Connection::new(Limits::default(), None);
        conn.feed(&frame(0x09, b"x"));
        assert!(matches!(conn.poll_message(), Err(Error::Protocol(_))));
        assert_eq!(close_code_sent(&conn), 1002);
    }

    #[test]
    fn oversized_frame_is_1009_before_the_payload_arrives() {
        let limits = Limits {
            max_frame: 1000,
            ..Limits::default()
        };
        let mut conn = Connection::new(limits, None);
        let wire = frame(0x82, &[0u8; 1001]);
        conn.feed(&wire[..20]);
        assert!(matches!(
            conn.poll_message(),
            Err(Error::FrameTooLarge { size: 1001, .. })
        ));
        assert_eq!(close_code_sent(&conn), 1009);
    }

    #[test]
    fn oversized_fragmented_message_is_1009() {
        let limits = Limits {
            max_message: 1000,
            ..Limits::default()
        };
        let mut conn = Connection::new(limits, None);
        conn.feed(&frame(0x02, &[0u8; 600]));
        conn.feed(&frame(0x80, &[0u8; 600]));
        assert!(matches!(
            conn.poll_message(),
            Err(Error::MessageTooLarge { .. })
        ));
        assert_eq!(close_code_sent(&conn), 1009);
    }

    #[test]
    fn close_is_echoed_and_bad_codes_are_1002() {
        let mut conn = Connection::new(Limits::default(), None);
        conn.feed(&frame(0x88, &[0x03, 0xe8, b'b', b'y', b'e']));
        assert!(matches!(
            conn.poll_message().unwrap(),
            Some(Message::Close(Some(_)))
        ));
        assert_eq!(close_code_sent(&conn), 1000);
        assert!(conn.send(Message::text("late")).is_err());
        let n = conn.pending().len();
        conn.advance(n);
        assert!(conn.is_finished());

        let mut conn = Connection::new(Limits::default(), None);
        conn.feed(&frame(0x88, &1005u16.to_be_bytes()));
        assert!(conn.poll_message().is_err());
        assert_eq!(close_code_sent(&conn), 1002);
    }

    #[test]
    fn send_buffer_is_bounded() {
        let limits = Limits {
            max_send_buffer: 100,
            ..Limits::default()
        };
        let mut conn = Connection::new(limits, None);
        // One message always fits into an empty buffer.
        conn.send(Message::binary(vec![0u8; 500])).unwrap();
        let error = conn.send(Message::binary(vec![0u8; 10])).unwrap_err();
        assert!(matches!(error, Error::SendBufferFull { limit: 100, .. }));
        let n = conn.pending().len();
        conn.advance(n);
        conn.send(Message::binary(vec![0u8; 10])).unwrap();
    }

    #[test]
    fn has_room_for_tells_exactly_what_send_refuses() {
        let limits = Limits {
            max_send_buffer: 100,
            ..Limits::default()
        };
        let mut conn = Connection::new(limits, None);
        assert!(conn.has_room_for(1000), "an empty buffer takes any message");
        conn.send(Message::binary(vec![0u8; 40])).unwrap();
        let queued = conn.pending_len();
        let left = 100 - queued;
        // Under the limit, but the next message does not fit: refused, and said so first.
        assert!(!conn.has_room_for(left + 1));
        assert!(matches!(
            conn.send(Message::binary(vec![0u8; left + 1])),
            Err(Error::SendBufferFull { .. })
        ));
        assert_eq!(
            conn.pending_len(),
            queued,
            "a refused message queues nothing"
        );
        assert!(conn.has_room_for(left));
        conn.send(Message::binary(vec![0u8; left])).unwrap();
        // Control frames are not bounded by it.
        assert!(!conn.has_room_for(1));
        conn.send(Message::Ping(Bytes::from_static(b"p"))).unwrap();
    }

    #[test]
    fn deflate_round_trip_through_frames() {
        use crate::deflate::DeflateParams;
        let params = DeflateParams {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            server_max_window_bits_offered: false,
            client_max_window_bits: None,
            level: 6,
            min_size: 0,
        };
        let mut server = Connection::new(Limits::default(), Some(params.clone()));
        let text = "compress me ".repeat(100);
        server.send(Message::text(text.clone())).unwrap();
        let wire = server.pending().to_vec();
        assert_eq!(wire[0], 0xc1, "FIN + RSV1 + text");
        // Feed the server's compressed frame back as if a client sent it (masked).
        let payload_start = if wire[1] < 126 { 2 } else { 4 };
        let mut client_frame = frame(0xc1, &wire[payload_start..]);
        client_frame[0] = 0xc1;
        let mut peer = Connection::new(Limits::default(), Some(params));
        peer.feed(&client_frame);
        assert_eq!(peer.poll_message().unwrap(), Some(Message::text(text)));
    }

    #[test]
    fn large_payloads_are_queued_apart_in_order() {
        let mut conn = Connection::new(Limits::default(), None);
        let big: Vec<u8> = (0..SHARED_PAYLOAD + 3).map(|i| i as u8).collect();
        conn.send(Message::text("a")).unwrap();
        conn.send(Message::binary(big.clone())).unwrap();
        conn.send(Message::text("b")).unwrap();
        let mut expected = vec![0x81, 1, b'a', 0x82, 126];
        expected.extend_from_slice(&(big.len() as u16).to_be_bytes());
        expected.extend_from_slice(&big);
        expected.extend_from_slice(&[0x81, 1, b'b']);
        assert_eq!(conn.pending_len(), expected.len());
        let mut slices = [IoSlice::new(&[]); 8];
        let filled = conn.pending_chunks(&mut slices);
        assert_eq!(
            filled, 3,
            "small frames with the header, the payload, the next frame"
        );
        let joined: Vec<u8> = slices[..filled].iter().flat_map(|s| s.to_vec()).collect();
        assert_eq!(joined, expected);
        // Written a few bytes at a time across the chunks' edges, via pending().
        let mut written = Vec::new();
        while !conn.pending().is_empty() {
            let step = conn.pending().len().min(1000);
            written.extend_from_slice(&conn.pending()[..step]);
            conn.advance(step);
        }
        assert_eq!(written, expected);
        assert_eq!(conn.pending_len(), 0);
        // Advancing past the end is harmless.
        conn.advance(5);
        assert_eq!(conn.pending_len(), 0);
    }

    #[test]
    fn incomplete_frame_reports_its_length_and_the_missing_bytes() {
        let mut conn = Connection::new(Limits::default(), None);
        let body = vec![7u8; 20_000];
        let wire = frame(0x82, &body);
        conn.feed(&wire[..1]);
        assert_eq!(conn.poll_message().unwrap(), None);
        assert_eq!(conn.incomplete_frame(), None, "no header yet");
        conn.feed(&wire[1..100]);
        assert_eq!(conn.poll_message().unwrap(), None);
        assert_eq!(
            conn.incomplete_frame(),
            Some((wire.len(), wire.len() - 100))
        );
        let buffer = conn.read_buffer();
        assert!(
            buffer.capacity() - buffer.len() >= wire.len() - 100,
            "the parser made room for the rest"
        );
        conn.feed(&wire[100..]);
        assert_eq!(conn.poll_message().unwrap(), Some(Message::binary(body)));
        assert_eq!(conn.incomplete_frame(), None);
    }

    #[test]
    fn an_adapter_keeps_the_read_buffer_and_reuses_its_allocation() {
        let body = vec![7u8; 100_000];
        let wire = frame(0x82, &body);
        // Without an adapter, an empty buffer over 64 KiB is given back at once.
        let mut conn = Connection::new(Limits::default(), None);
        conn.read_buffer().reserve(200_000);
        conn.feed(&wire);
        assert_eq!(
            conn.poll_message().unwrap(),
            Some(Message::binary(body.clone()))
        );
        assert_eq!(conn.poll_message().unwrap(), None);
        assert_eq!(conn.read_buffer().capacity(), 0);

        // An adapter keeps it: once the message that shares it is gone, the next burst
        // goes to the same allocation instead of a fresh one.
        let mut conn = Connection::new(Limits::default(), None);
        conn.keep_read_buffer();
        conn.read_buffer().reserve(200_000);
        let start = conn.read_buffer().as_ptr();
        conn.feed(&wire);
        let message = conn.poll_message().unwrap();
        assert_eq!(message, Some(Message::binary(body.clone())));
        assert_eq!(conn.poll_message().unwrap(), None);
        assert!(conn.read_buffer().capacity() > 64 * 1024);
        drop(message);
        conn.read_buffer().reserve(150_000);
        assert_eq!(
            conn.read_buffer().as_ptr(),
            start,
            "the allocation was reused"
        );
        conn.feed(&wire);
        assert_eq!(conn.poll_message().unwrap(), Some(Message::binary(body)));
        conn.release_read_buffer();
        assert_eq!(conn.read_buffer().capacity(), 0, "released when asked");
    }

    #[test]
    fn mask_of_every_length_and_offset_matches_the_bytewise_xor() {
        let data: Vec<u8> = (0..200u32).map(|i| (i * 7) as u8).collect();
        for len in [0, 1, 3, 31, 32, 33, 64, 100, 200] {
            let mut masked = data[..len].to_vec();
            apply_mask(&mut masked, MASK);
            let expected: Vec<u8> = data[..len]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ MASK[i % 4])
                .collect();
            assert_eq!(masked, expected, "{len}");
        }
    }

    #[test]
    fn rsv1_without_deflate_is_1002() {
        let mut conn = Connection::new(Limits::default(), None);
        conn.feed(&frame(0xc1, b"x"));
        assert!(matches!(conn.poll_message(), Err(Error::Protocol(_))));
    }
}
