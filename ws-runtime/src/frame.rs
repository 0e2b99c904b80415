//! RFC 6455 framing: decoding client frames (with every check the RFC asks of a server),
//! reassembling messages with fail-fast UTF-8 validation, and encoding server frames once so
//! that a broadcast shares them.

use std::ops::Range;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::deflate::{Deflater, Inflater};
use crate::message::{Close, Message, Text};

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// Payloads up to this size are copied out of the read buffer; larger ones are split off it.
const COPY_OUT: usize = 8 << 10;

/// A server frame, encoded once: its header and its payload, shared by every receiver.
#[derive(Clone, Debug)]
pub(crate) struct OutFrame {
    head: [u8; 10],
    header_len: u8,
    pub(crate) payload: Bytes,
    /// For a data message large enough that some socket compresses it: its compressed
    /// payload, computed by the first receiver without context takeover and shared by the
    /// others with the same parameters (the key).
    deflated: Option<Arc<crate::deflate::Shared>>,
}

impl OutFrame {
    fn new(opcode: u8, payload: Bytes) -> Self {
        OutFrame::with_first(0x80 | opcode, payload)
    }

    fn with_first(first: u8, payload: Bytes) -> Self {
        let (head, header_len) = encode_head(first, payload.len());
        OutFrame {
            head,
            header_len,
            payload,
            deflated: None,
        }
    }

    /// A text or binary data frame for this message.
    pub(crate) fn message(message: Message) -> Self {
        let mut frame = match message {
            Message::Text(text) => OutFrame::new(OP_TEXT, text.into_bytes()),
            Message::Binary(bytes) => OutFrame::new(OP_BINARY, bytes),
        };
        if crate::deflate::may_share(frame.payload.len()) {
            frame.deflated = Some(Arc::default());
        }
        frame
    }

    /// This data frame compressed for one receiver (RSV1 set), or itself when it stays
    /// uncompressed.
    pub(crate) fn deflate(self, deflater: &mut Deflater) -> Self {
        let opcode = self.head[0] & 0x0F;
        if opcode != OP_TEXT && opcode != OP_BINARY {
            return self;
        }
        match deflater.deflate(&self.payload, self.deflated.as_deref()) {
            Some(compressed) => OutFrame::with_first(0xC0 | opcode, compressed),
            None => self,
        }
    }

    pub(crate) fn ping(payload: Bytes) -> Self {
        OutFrame::new(OP_PING, payload)
    }

    pub(crate) fn pong(payload: Bytes) -> Self {
        OutFrame::new(OP_PONG, payload)
    }

    /// A close frame; [`Close::NO_STATUS`] (the peer's close had no code) is answered with an
    /// empty close frame, since 1005 never goes on the wire.
    pub(crate) fn close(close: &Close) -> Self {
        if close.code == Close::NO_STATUS {
            return OutFrame::new(OP_CLOSE, Bytes::new());
        }
        let reason = crate::endpoint::truncate_reason(&close.reason);
        let mut payload = Vec::with_capacity(2 + reason.len());
        payload.extend_from_slice(&close.code.to_be_bytes());
        payload.extend_from_slice(reason.as_bytes());
        OutFrame::new(OP_CLOSE, payload.into())
    }

    /// The frames of this data message when its payload is over `size` bytes: each frame's
    /// header and the range of the payload it carries. The first frame keeps the opcode and
    /// RSV1, the others are continuations, the last has FIN.
    pub(crate) fn fragments(&self, size: usize) -> impl Iterator<Item = (FrameHead, Range<usize>)> {
        let len = self.payload.len();
        let first = self.head[0] & 0x7F;
        (0..len).step_by(size.max(1)).map(move |start| {
            let end = len.min(start + size);
            let opcode = if start == 0 { first } else { OP_CONTINUATION };
            let fin = if end == len { 0x80 } else { 0 };
            let (head, header_len) = encode_head(fin | opcode, end - start);
            (FrameHead { head, header_len }, start..end)
        })
    }

    /// This frame's header.
    pub(crate) fn frame_head(&self) -> FrameHead {
        FrameHead {
            head: self.head,
            header_len: self.header_len,
        }
    }

    #[cfg(test)]
    pub(crate) fn head(&self) -> &[u8] {
        &self.head[..usize::from(self.header_len)]
    }

    /// Header and payload bytes together.
    pub(crate) fn len(&self) -> usize {
        usize::from(self.header_len) + self.payload.len()
    }
}

/// The header of one server frame.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FrameHead {
    head: [u8; 10],
    header_len: u8,
}

impl FrameHead {
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.head[..usize::from(self.header_len)]
    }
}

/// A server frame header (unmasked): its first byte, then the payload length in 1, 3 or 9
/// bytes.
fn encode_head(first: u8, len: usize) -> ([u8; 10], u8) {
    let mut head = [0u8; 10];
    head[0] = first;
    let header_len = if len < 126 {
        head[1] = u8::try_from(len).unwrap_or(0);
        2
    } else if let Ok(len) = u16::try_from(len) {
        head[1] = 126;
        head[2..4].copy_from_slice(&len.to_be_bytes());
        4
    } else {
        head[1] = 127;
        head[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    };
    (head, header_len)
}

/// What the decoder found in the bytes read so far.
#[derive(Debug)]
pub(crate) enum Event {
    /// A complete text or binary message.
    Message(Message),
    /// Streaming: the first frame of a fragmented message.
    Begin {
        text: bool,
        chunk: Bytes,
    },
    /// Streaming: a middle frame of a fragmented message.
    Chunk(Bytes),
    /// Streaming: the last frame of a fragmented message, which is valid.
    End(Bytes),
    Ping(Bytes),
    Pong,
    /// The peer's close: its code (1005 without one) and reason.
    Close(Close),
}

impl Event {
    /// Whether this event's payload was split off the read buffer (not copied out of it), so
    /// that the buffer cannot be reused before the payload is dropped.
    pub(crate) fn shares_read_buffer(&self) -> bool {
        let len = match self {
            Event::Message(message) => message.len(),
            Event::Begin { chunk, .. } | Event::Chunk(chunk) | Event::End(chunk) => chunk.len(),
            Event::Ping(_) | Event::Pong | Event::Close(_) => 0,
        };
        len > COPY_OUT
    }
}

/// Limits the decoder enforces.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) max_frame: usize,
    pub(crate) max_message: usize,
}

/// Turns the bytes a client sent into events, failing with the close to send on any
/// violation: 1002 for protocol errors, 1007 for invalid UTF-8, 1009 for sizes over the limits.
#[derive(Debug)]
pub(crate) struct Decoder {
    limits: Limits,
    /// When permessage-deflate was negotiated. Boxed: inline, its 160 bytes were part of every
    /// connection's reader, compressed or not.
    inflater: Option<Box<Inflater>>,
    /// A fragmented message in progress: its kind and its fragments so far. Boxed: most
    /// messages come whole, and inline it was half the decoder.
    partial: Option<Box<Partial>>,
    /// Fragmented messages are given frame by frame instead of collected.
    streams: bool,
    /// Frames decoded, control frames included.
    pub(crate) frames: u64,
    /// Bytes the buffer must hold for the frame at its front to be decoded, once its header
    /// is there (0 before).
    wanted: usize,
}

#[derive(Debug)]
struct Partial {
    text: bool,
    /// Compressed (RSV1 on its first frame): each frame is inflated as it arrives.
    compressed: bool,
    /// The fragments so far, unless streamed.
    data: BytesMut,
    /// Bytes of the message so far (after inflation).
    len: usize,
    utf8: Utf8Check,
}

impl Decoder {
    #[cfg(test)]
    pub(crate) fn new(limits: Limits) -> Self {
        Decoder::with_inflater(limits, None)
    }

    /// A decoder that accepts compressed messages when given an inflater.
    pub(crate) fn with_inflater(limits: Limits, inflater: Option<Inflater>) -> Self {
        Decoder {
            limits,
            inflater: inflater.map(Box::new),
            partial: None,
            streams: false,
            frames: 0,
            wanted: 0,
        }
    }

    /// Gives fragmented messages frame by frame ([`Event::Begin`], [`Event::Chunk`],
    /// [`Event::End`]) instead of collecting them.
    pub(crate) fn streaming(mut self, streams: bool) -> Self {
        self.streams = streams;
        self
    }

    /// Bytes `buf` must hold before the next [`decode`](Decoder::decode) can return the frame
    /// at its front, when its header is known (0 otherwise). The caller makes room for them
    /// before reading more.
    pub(crate) fn wanted(&self) -> usize {
        self.wanted
    }

    /// Decodes the next event from the front of `buf`, or `Ok(None)` until more bytes arrive.
    ///
    /// # Errors
    ///
    /// The close to fail the connection with.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Event>, Close> {
        loop {
            let head = match parse_head(buf) {
                None => return Ok(None),
                Some(head) => head?,
            };
            if head.payload_len > self.limits.max_frame {
                return Err(too_big("Frame too big"));
            }
            if buf.len() < head.header_len + head.payload_len {
                self.wanted = head.header_len + head.payload_len;
                return Ok(None);
            }
            self.wanted = 0;
            let end = head.header_len + head.payload_len;
            let payload = if head.payload_len <= COPY_OUT {
                // Copied out, the read buffer stays this connection's own and is reused for
                // the next reads instead of being reallocated for every frame.
                let body = &mut buf[head.header_len..end];
                unmask(body, head.mask);
                let payload = BytesMut::from(&*body);
                buf.advance(end);
                payload
            } else {
                buf.advance(head.header_len);
                let mut payload = buf.split_to(head.payload_len);
                unmask(&mut payload, head.mask);
                payload
            };
            self.frames += 1;
            if head.rsv1 {
                if self.inflater.is_none() {
                    return Err(protocol("RSV1 set without permessage-deflate"));
                }
                if head.opcode != OP_TEXT && head.opcode != OP_BINARY {
                    return Err(protocol("RSV1 set on a control or continuation frame"));
                }
            }
            if let Some(event) = self.frame(head.fin, head.opcode, head.rsv1, payload)? {
                return Ok(Some(event));
            }
        }
    }

    /// Inflates one frame of a compressed message, within what is left of the message limit.
    fn inflate(&mut self, payload: &[u8], fin: bool, so_far: usize) -> Result<BytesMut, Close> {
        let Some(inflater) = self.inflater.as_mut() else {
            return Err(protocol("Compressed frame without permessage-deflate"));
        };
        let mut out = Vec::new();
        let limit = self.limits.max_message.saturating_sub(so_far);
        inflater.inflate(payload, fin, &mut out, limit)?;
        Ok(BytesMut::from(Bytes::from(out)))
    }

    fn frame(
        &mut self,
        fin: bool,
        opcode: u8,
        compressed: bool,
        payload: BytesMut,
    ) -> Result<Option<Event>, Close> {
        match opcode {
            OP_TEXT | OP_BINARY => {
                if self.partial.is_some() {
                    return Err(protocol("New message inside a fragmented message"));
                }
                let text = opcode == OP_TEXT;
                let payload = if compressed {
                    self.inflate(&payload, fin, 0)?
                } else {
                    payload
                };
                if payload.len() > self.limits.max_message {
                    return Err(too_big("Message too big"));
                }
                if fin {
                    return complete(text, payload.freeze()).map(Some);
                }
                let mut utf8 = Utf8Check::default();
                if text && !utf8.feed(&payload) {
                    return Err(invalid_utf8());
                }
                let len = payload.len();
                let (data, event) = if self.streams {
                    let chunk = payload.freeze();
                    (BytesMut::new(), Some(Event::Begin { text, chunk }))
                } else {
                    (payload, None)
                };
                self.partial = Some(Box::new(Partial {
                    text,
                    compressed,
                    data,
                    len,
                    utf8,
                }));
                Ok(event)
            }
            OP_CONTINUATION => {
                let Some(partial) = self.partial.as_ref() else {
                    return Err(protocol("Continuation without a message"));
                };
                let payload = if partial.compressed {
                    let so_far = partial.len;
                    self.inflate(&payload, fin, so_far)?
                } else {
                    payload
                };
                let Some(partial) = self.partial.as_mut() else {
                    return Ok(None);
                };
                if partial.len + payload.len() > self.limits.max_message {
                    return Err(too_big("Message too big"));
                }
                if partial.text && !partial.utf8.feed(&payload) {
                    return Err(invalid_utf8());
                }
                partial.len += payload.len();
                if !self.streams {
                    partial.data.extend_from_slice(&payload);
                }
                if !fin {
                    return Ok(self.streams.then(|| Event::Chunk(payload.freeze())));
                }
                let Some(partial) = self.partial.take() else {
                    return Ok(None);
                };
                if partial.text && !partial.utf8.is_complete() {
                    return Err(invalid_utf8());
                }
                if self.streams {
                    return Ok(Some(Event::End(payload.freeze())));
                }
                complete(partial.text, partial.data.freeze()).map(Some)
            }
            OP_PING => Ok(Some(Event::Ping(payload.freeze()))),
            OP_PONG => Ok(Some(Event::Pong)),
            OP_CLOSE => close_event(&payload).map(|close| Some(Event::Close(close))),
            _ => Err(protocol("Reserved opcode")),
        }
    }
}

fn complete(text: bool, payload: Bytes) -> Result<Event, Close> {
    if text {
        Ok(Event::Message(Message::Text(Text::from_utf8_bytes(
            validated(payload)?,
        ))))
    } else {
        Ok(Event::Message(Message::Binary(payload)))
    }
}

/// A text payload as `Utf8Bytes`, validated with SIMD (simdutf8): std's validator, which
/// `Utf8Bytes::try_from` runs, was the largest user-space cost of echoing non-ASCII text.
#[allow(unsafe_code)]
pub(crate) fn validated(payload: Bytes) -> Result<Utf8Bytes, Close> {
    simdutf8::basic::from_utf8(&payload).map_err(|_| invalid_utf8())?;
    // SAFETY: `payload` was validated as UTF-8 just above, and `Bytes` is immutable.
    Ok(unsafe { Utf8Bytes::from_bytes_unchecked(payload) })
}

/// Reads a close frame's payload: no payload means no code (1005); otherwise a code the RFC
/// allows on the wire and a UTF-8 reason.
fn close_event(payload: &[u8]) -> Result<Close, Close> {
    match payload {
        [] => Ok(Close::new(Close::NO_STATUS, "")),
        [_] => Err(protocol("Close frame with a one-byte payload")),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !Close::is_sendable(code) {
                return Err(Close::new(Close::PROTOCOL_ERROR, "Protocol violation"));
            }
            let reason = std::str::from_utf8(reason).map_err(|_| invalid_utf8())?;
            Ok(Close::new(code, reason))
        }
    }
}

fn protocol(reason: &str) -> Close {
    tracing::debug!("protocol error: {reason}");
    Close::new(Close::PROTOCOL_ERROR, "Protocol error")
}

fn too_big(reason: &str) -> Close {
    tracing::debug!("{reason}");
    Close::new(Close::TOO_BIG, "Message too big")
}

fn invalid_utf8() -> Close {
    Close::new(Close::INVALID_DATA, "Invalid UTF-8")
}

#[derive(Debug)]
struct Head {
    fin: bool,
    rsv1: bool,
    opcode: u8,
    mask: [u8; 4],
    header_len: usize,
    payload_len: usize,
}

/// Parses a client frame header; `None` until enough bytes are there.
fn parse_head(buf: &[u8]) -> Option<Result<Head, Close>> {
    let [first, second, ..] = *buf else {
        return None;
    };
    let fin = first & 0x80 != 0;
    let opcode = first & 0x0F;
    // RSV1 is permessage-deflate's, checked by the decoder; RSV2 and RSV3 are never used.
    let rsv1 = first & 0x40 != 0;
    if first & 0x30 != 0 {
        return Some(Err(protocol("Reserved bits set")));
    }
    if second & 0x80 == 0 {
        return Some(Err(protocol("Unmasked client frame")));
    }
    let (extended, short) = match second & 0x7F {
        126 => (2, None),
        127 => (8, None),
        n => (0, Some(usize::from(n))),
    };
    let header_len = 2 + extended + 4;
    if buf.len() < header_len {
        return None;
    }
    let payload_len = match short {
        Some(n) => n,
        None if extended == 2 => usize::from(u16::from_be_bytes([buf[2], buf[3]])),
        None => {
            let mut be = [0u8; 8];
            be.copy_from_slice(&buf[2..10]);
            let len = u64::from_be_bytes(be);
            if len >> 63 != 0 {
                return Some(Err(protocol("Payload length with the top bit set")));
            }
            usize::try_from(len).unwrap_or(usize::MAX)
        }
    };
    if opcode >= 0x8 && (!fin || payload_len > 125) {
        return Some(Err(protocol("Fragmented or oversized control frame")));
    }
    let mut mask = [0u8; 4];
    mask.copy_from_slice(&buf[2 + extended..header_len]);
    Some(Ok(Head {
        fin,
        rsv1,
        opcode,
        mask,
        header_len,
        payload_len,
    }))
}

/// XORs the payload with the masking key: with AVX2 where the CPU has it (detected once, at
/// run time), otherwise with the baseline SSE2 the portable loop compiles to.
fn unmask(payload: &mut [u8], key: [u8; 4]) {
    #[cfg(target_arch = "x86_64")]
    if payload.len() >= 256 && std::arch::is_x86_feature_detected!("avx2") {
        #[allow(unsafe_code)]
        // SAFETY: the CPU supports AVX2, checked just above.
        unsafe {
            unmask_avx2(payload, key);
        }
        return;
    }
    unmask_words(payload, key);
}

/// [`unmask_words`] compiled for AVX2: the same loop, vectorised 32 bytes wide.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn unmask_avx2(payload: &mut [u8], key: [u8; 4]) {
    unmask_words(payload, key);
}

/// XORs eight bytes at a time, which the compiler vectorises for the target's widest unit.
// Always inlined: only a copy inside `unmask_avx2` is compiled with AVX2.
#[allow(clippy::inline_always)]
#[inline(always)]
fn unmask_words(payload: &mut [u8], key: [u8; 4]) {
    // The key twice, in memory order: the same on either endianness.
    let key32 = u64::from(u32::from_ne_bytes(key));
    let wide = key32 | (key32 << 32);
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    // Chunks of eight keep the key's phase, so the tail starts at key byte 0.
    for (byte, k) in chunks.into_remainder().iter_mut().zip(key.iter().cycle()) {
        *byte ^= k;
    }
}

/// Validates UTF-8 split across fragments, failing as soon as a byte cannot be valid.
#[derive(Debug, Default)]
struct Utf8Check {
    /// The start of a character cut by the fragment boundary (a valid prefix).
    carry: [u8; 4],
    carry_len: usize,
}

impl Utf8Check {
    /// Whether these bytes can still be part of valid UTF-8.
    fn feed(&mut self, mut data: &[u8]) -> bool {
        if self.carry_len > 0 {
            let width = char_width(self.carry[0]);
            while self.carry_len < width && !data.is_empty() {
                self.carry[self.carry_len] = data[0];
                self.carry_len += 1;
                data = &data[1..];
            }
            let pending = &self.carry[..self.carry_len];
            if self.carry_len < width {
                // Still cut: valid so far if the prefix is.
                return matches!(std::str::from_utf8(pending), Err(e) if e.error_len().is_none());
            }
            if std::str::from_utf8(pending).is_err() {
                return false;
            }
            self.carry_len = 0;
        }
        match std::str::from_utf8(data) {
            Ok(_) => true,
            Err(err) if err.error_len().is_none() => {
                let rest = &data[err.valid_up_to()..];
                self.carry[..rest.len()].copy_from_slice(rest);
                self.carry_len = rest.len();
                true
            }
            Err(_) => false,
        }
    }

    /// Whether the text ended on a character boundary.
    fn is_complete(&self) -> bool {
        self.carry_len == 0
    }
}

fn char_width(lead: u8) -> usize {
    match lead {
        0x00..=0x7F => 1,
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![first];
        let key = [0xA1, 0xB2, 0xC3, 0xD4];
        match payload.len() {
            n @ 0..=125 => out.push(0x80 | u8::try_from(n).unwrap()),
            n @ 126..=65535 => {
                out.push(0x80 | 0x7e);
                out.extend_from_slice(&u16::try_from(n).unwrap().to_be_bytes());
            }
            n => {
                out.push(0x80 | 0x7f);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&key);
        out.extend(payload.iter().zip(key.iter().cycle()).map(|(b, k)| b ^ k));
        out
    }

    fn decode_all(bytes: &[u8]) -> Result<Vec<Event>, Close> {
        let mut decoder = Decoder::new(Limits {
            max_frame: 1 << 20,
            max_message: 4 << 20,
        });
        let mut buf = BytesMut::from(bytes);
        let mut events = Vec::new();
        while let Some(event) = decoder.decode(&mut buf)? {
            events.push(event);
        }
        Ok(events)
    }

    #[test]
    fn whole_and_fragmented_messages() {
        let mut bytes = client_frame(0x81, "héllo".as_bytes());
        bytes.extend(client_frame(0x01, &"wörld".as_bytes()[..2]));
        bytes.extend(client_frame(0x89, b"p"));
        bytes.extend(client_frame(0x00, &"wörld".as_bytes()[2..4]));
        bytes.extend(client_frame(0x80, &"wörld".as_bytes()[4..]));
        bytes.extend(client_frame(0x82, &vec![0u8; 70_000]));
        let events = decode_all(&bytes).unwrap();
        assert!(matches!(&events[0], Event::Message(m) if m.as_text() == Some("héllo")));
        assert!(matches!(&events[1], Event::Ping(p) if &p[..] == b"p"));
        assert!(matches!(&events[2], Event::Message(m) if m.as_text() == Some("wörld")));
        assert!(matches!(&events[3], Event::Message(m) if m.len() == 70_000));
    }

    #[test]
    fn a_streaming_decoder_gives_fragments_as_they_come() {
        let mut decoder = Decoder::new(Limits {
            max_frame: 1 << 20,
            max_message: 10,
        })
        .streaming(true);
        let mut bytes = client_frame(0x81, b"whole");
        bytes.extend(client_frame(0x01, &"wö".as_bytes()[..2]));
        bytes.extend(client_frame(0x89, b"p"));
        bytes.extend(client_frame(0x00, &"wö".as_bytes()[2..]));
        bytes.extend(client_frame(0x80, b"rld"));
        bytes.extend(client_frame(0x02, b"12345"));
        bytes.extend(client_frame(0x80, b"678901"));
        let mut buf = BytesMut::from(&bytes[..]);
        let mut next = || decoder.decode(&mut buf);
        assert!(matches!(next(), Ok(Some(Event::Message(m))) if m.as_text() == Some("whole")));
        assert!(
            matches!(next(), Ok(Some(Event::Begin { text: true, chunk })) if chunk[..] == *b"w\xC3")
        );
        assert!(matches!(next(), Ok(Some(Event::Ping(_)))));
        assert!(matches!(next(), Ok(Some(Event::Chunk(chunk))) if chunk[..] == [0xB6]));
        assert!(matches!(next(), Ok(Some(Event::End(chunk))) if chunk[..] == *b"rld"));
        assert!(matches!(next(), Ok(Some(Event::Begin { text: false, .. }))));
        // 11 bytes in all: over the message limit, though no frame is.
        assert_eq!(next().unwrap_err().code, Close::TOO_BIG);
    }

    #[test]
    fn violations_get_their_codes() {
        let code = |bytes: Vec<u8>| decode_all(&bytes).unwrap_err().code;
        assert_eq!(code(client_frame(0xC1, b"x")), 1002, "rsv1");
        assert_eq!(code(client_frame(0x83, b"")), 1002, "reserved opcode");
        assert_eq!(code(client_frame(0x09, b"")), 1002, "fragmented ping");
        assert_eq!(code(client_frame(0x80, b"x")), 1002, "orphan continuation");
        assert_eq!(code(client_frame(0x81, &[0xff])), 1007);
        assert_eq!(
            code(client_frame(0x01, &[0xed, 0xa0])),
            1007,
            "surrogate, fail fast"
        );
        assert_eq!(code(client_frame(0x88, &[0x03])), 1002, "one-byte close");
        assert_eq!(
            code(client_frame(0x88, &[0x03, 0xed])),
            1002,
            "close code 1005"
        );
        assert_eq!(
            code(client_frame(0x88, &[0x03, 0xe8, 0xff])),
            1007,
            "close reason"
        );
        assert_eq!(code(client_frame(0x82, &vec![0u8; (1 << 20) + 1])), 1009);
        let mut unmasked = client_frame(0x81, b"x");
        unmasked[1] &= 0x7F;
        assert_eq!(code(unmasked), 1002);
    }

    proptest::proptest! {
        /// However the bytes of a frame stream are cut into reads, the same messages come out.
        #[test]
        fn decodes_the_same_across_random_reads(
            messages in proptest::collection::vec(
                (proptest::bool::ANY, proptest::collection::vec(proptest::num::u8::ANY, 0..300), 1usize..4),
                1..8,
            ),
            cuts in proptest::collection::vec(1usize..200, 1..30),
        ) {
            let mut stream = Vec::new();
            let mut expected = Vec::new();
            for (text, payload, parts) in &messages {
                let payload: Vec<u8> = if *text {
                    String::from_utf8_lossy(payload).into_owned().into_bytes()
                } else {
                    payload.clone()
                };
                let size = payload.len().div_ceil(*parts).max(1);
                let chunks: Vec<&[u8]> = if payload.is_empty() { vec![&[][..]] } else { payload.chunks(size).collect() };
                for (i, chunk) in chunks.iter().enumerate() {
                    let opcode = if i > 0 { 0x0 } else if *text { 0x1 } else { 0x2 };
                    let fin = if i + 1 == chunks.len() { 0x80 } else { 0 };
                    stream.extend(client_frame(fin | opcode, chunk));
                }
                expected.push(payload);
            }
            let mut decoder = Decoder::new(Limits { max_frame: 1 << 20, max_message: 1 << 20 });
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            let mut rest = stream.as_slice();
            let mut cuts = cuts.iter().cycle();
            while !rest.is_empty() {
                let n = (*cuts.next().unwrap()).min(rest.len());
                buf.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
                while let Some(event) = decoder.decode(&mut buf).unwrap() {
                    if let Event::Message(message) = event {
                        got.push(message.as_bytes().to_vec());
                    }
                }
            }
            proptest::prop_assert_eq!(got, expected);
        }

        /// Arbitrary bytes end in events or a close code, never in a panic.
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2048)) {
            let mut decoder = Decoder::new(Limits { max_frame: 1 << 16, max_message: 1 << 16 });
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = decoder.decode(&mut buf) {}
        }
    }

    #[test]
    fn utf8_split_anywhere() {
        let text = "aé€😀z".as_bytes();
        for cut in 0..=text.len() {
            let mut check = Utf8Check::default();
            assert!(
                check.feed(&text[..cut]) && check.feed(&text[cut..]) && check.is_complete(),
                "{cut}"
            );
        }
        let mut check = Utf8Check::default();
        assert!(check.feed(&[0xF0, 0x9F]));
        assert!(!check.is_complete());
        assert!(!check.feed(&[0x41]), "a cut character continued wrongly");
    }

    #[test]
    fn out_frames_encode_lengths() {
        assert_eq!(OutFrame::message(Message::text("hi")).head(), &[0x81, 2]);
        assert_eq!(
            OutFrame::message(Message::binary(vec![0; 300])).head(),
            &[0x82, 126, 1, 44]
        );
        let big = OutFrame::message(Message::binary(vec![0; 70_000]));
        assert_eq!(big.head()[..2], [0x82, 127]);
        assert_eq!(big.len(), 10 + 70_000);
        assert_eq!(OutFrame::close(&Close::new(1005, "")).head(), &[0x88, 0]);
        let close = OutFrame::close(&Close::new(1000, "bye"));
        assert_eq!(close.head(), &[0x88, 5]);
        assert_eq!(&close.payload[..], &[0x03, 0xe8, b'b', b'y', b'e']);
    }

    fn negotiated() -> crate::deflate::Negotiated {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::SEC_WEBSOCKET_EXTENSIONS,
            http::HeaderValue::from_static("permessage-deflate"),
        );
        crate::deflate::negotiate(&crate::deflate::Deflate::default(), &headers).unwrap()
    }

    #[test]
    fn rsv1_only_on_the_first_frame_of_a_compressed_message() {
        let decode = |bytes: &[u8]| {
            let mut decoder = Decoder::with_inflater(
                Limits {
                    max_frame: 1 << 20,
                    max_message: 1 << 20,
                },
                Some(Inflater::new(&negotiated())),
            );
            let mut buf = BytesMut::from(bytes);
            let mut events = Vec::new();
            while let Some(event) = decoder.decode(&mut buf)? {
                events.push(event);
            }
            Ok::<_, Close>(events)
        };
        // "hi" as a stored block ended by a sync flush, its `00 00 ff ff` stripped.
        let hi = [0x00, 0x02, 0x00, 0xfd, 0xff, b'h', b'i', 0x00];
        let events = decode(&client_frame(0xC1, &hi)).unwrap();
        assert!(matches!(&events[0], Event::Message(m) if m.as_text() == Some("hi")));
        let mut split = client_frame(0x41, &hi[..6]);
        split.extend(client_frame(0x80, &hi[6..]));
        let events = decode(&split).unwrap();
        assert!(matches!(&events[0], Event::Message(m) if m.as_text() == Some("hi")));
        let code = |bytes: Vec<u8>| decode(&bytes).unwrap_err().code;
        assert_eq!(code(client_frame(0xC9, b"")), 1002, "rsv1 on a ping");
        let mut continuation = client_frame(0x01, b"a");
        continuation.extend(client_frame(0xC0, b"b"));
        assert_eq!(code(continuation), 1002, "rsv1 on a continuation");
        assert_eq!(code(client_frame(0xA1, b"x")), 1002, "rsv2");
        assert_eq!(
            code(client_frame(0xC1, &[0xff, 0xff])),
            1007,
            "bad deflate data"
        );
    }

    #[test]
    fn a_broadcast_is_compressed_once_without_context_takeover() {
        crate::deflate::enable_sharing(&crate::deflate::Deflate::default());
        let frame = OutFrame::message(Message::text("shared ".repeat(100)));
        let mut a = Deflater::new(negotiated());
        let mut b = Deflater::new(negotiated());
        let first = frame.clone().deflate(&mut a);
        let second = frame.clone().deflate(&mut b);
        assert_eq!(first.head()[0], 0xC1);
        assert!(first.payload.len() < 100);
        assert_eq!(
            first.payload.as_ptr(),
            second.payload.as_ptr(),
            "the same bytes, not a second compression"
        );
        let small = OutFrame::message(Message::text("tiny")).deflate(&mut a);
        assert_eq!(small.head(), &[0x81, 4], "under the threshold");
        // Incompressible: sent as it is, by every receiver.
        let mut x = 0x9E37_79B9_7F4A_7C15_u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()[3]
            })
            .collect();
        let frame = OutFrame::message(Message::binary(noise));
        for deflater in [&mut a, &mut b] {
            let sent = frame.clone().deflate(deflater);
            assert_eq!(sent.head()[0], 0x82, "no RSV1");
            assert_eq!(sent.payload, frame.payload);
        }
    }

    #[test]
    fn unmask_matches_bytewise() {
        let key = [1, 2, 3, 4];
        for len in [0, 1, 7, 8, 9, 31, 100, 255, 256, 257, 1000, 4099] {
            let data: Vec<u8> = (0..len).map(|i| u8::try_from(i % 251).unwrap()).collect();
            let mut fast = data.clone();
            unmask(&mut fast, key);
            let slow: Vec<u8> = data
                .iter()
                .zip(key.iter().cycle())
                .map(|(b, k)| b ^ k)
                .collect();
            assert_eq!(fast, slow);
        }
    }
}
