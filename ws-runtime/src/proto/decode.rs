//! Decoding client frames: every check RFC 6455 asks of a server, message reassembly with
//! fail-fast UTF-8 validation, inflation of compressed messages (RFC 7692), and the limits.

use bytes::{Buf, Bytes, BytesMut};

use super::deflate::Inflater;
use super::mask::unmask;
use super::utf8::Utf8Check;
use super::{OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT, ProtocolError};
use crate::message::{Close, Message, Text};

/// Payloads up to this size are copied out of the read buffer; larger ones are split off it.
const COPY_OUT: usize = 8 << 10;

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

/// Turns the bytes a client sent into events, failing with the [`ProtocolError`] the peer
/// committed (its close code: 1002 for protocol errors, 1007 for invalid UTF-8, 1009 for sizes
/// over the limits).
#[derive(Debug)]
pub(crate) struct Decoder {
    limits: Limits,
    /// When permessage-deflate was negotiated. Boxed: inline, its state would be part of every
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
    /// The front frame's text checked so far, while it arrives in pieces.
    early: Early,
}

/// The text of a frame that arrives in pieces, checked as its bytes come (RFC 6455 §8.1
/// fails a connection as soon as its text cannot be valid UTF-8): the payload bytes already
/// unmasked in place and checked, and the check's state after them.
#[derive(Debug, Default)]
struct Early {
    /// Payload bytes of the front frame unmasked and checked (a `u32`: the decoder is part of
    /// every connection; a frame over 4 GiB is checked when whole).
    checked: u32,
    utf8: Utf8Check,
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
            early: Early::default(),
        }
    }

    /// Gives fragmented messages frame by frame ([`Event::Begin`], [`Event::Chunk`],
    /// [`Event::End`]) instead of collecting them.
    pub(crate) fn streaming(mut self, streams: bool) -> Self {
        self.streams = streams;
        self
    }

    /// Bytes inflated so far (0 without permessage-deflate): the rate limit counts them.
    pub(crate) fn inflated(&self) -> u64 {
        self.inflater.as_deref().map_or(0, Inflater::inflated)
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
    /// The rule the peer broke; the connection is failed with its close.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Event>, ProtocolError> {
        loop {
            let head = match parse_head(buf) {
                None => return Ok(None),
                Some(head) => head?,
            };
            if head.payload_len > self.limits.max_frame {
                return Err(ProtocolError::FrameTooBig);
            }
            if buf.len() < head.header_len + head.payload_len {
                self.wanted = head.header_len + head.payload_len;
                self.check_early(&head, buf)?;
                return Ok(None);
            }
            self.wanted = 0;
            // Bytes unmasked while the frame arrived are not unmasked again.
            let done = std::mem::take(&mut self.early).checked as usize;
            let mask = rotate(head.mask, done);
            let end = head.header_len + head.payload_len;
            let payload = if head.payload_len <= COPY_OUT {
                // Copied out, the read buffer stays this connection's own and is reused for
                // the next reads instead of being reallocated for every frame.
                let body = &mut buf[head.header_len..end];
                unmask(&mut body[done..], mask);
                let payload = BytesMut::from(&*body);
                buf.advance(end);
                payload
            } else {
                buf.advance(head.header_len);
                let mut payload = buf.split_to(head.payload_len);
                unmask(&mut payload[done..], mask);
                payload
            };
            self.frames += 1;
            if head.rsv1 {
                if self.inflater.is_none() {
                    return Err(ProtocolError::CompressionNotNegotiated);
                }
                if head.opcode != OP_TEXT && head.opcode != OP_BINARY {
                    return Err(ProtocolError::CompressedControlOrContinuation);
                }
            }
            if let Some(event) = self.frame(head.fin, head.opcode, head.rsv1, payload)? {
                return Ok(Some(event));
            }
        }
    }

    /// Checks the text of the front frame as far as it has arrived: unmasks the bytes that
    /// came since the last look, in place, and fails as soon as they cannot be valid UTF-8.
    /// Only uncompressed text (the inflater sees a compressed frame whole) of a frame that
    /// would be accepted; any other is checked when whole. The checks run in the order they
    /// run on a whole frame (the message limit, then UTF-8), so that how the bytes are cut
    /// into reads does not change the error.
    fn check_early(&mut self, head: &Head, buf: &mut BytesMut) -> Result<(), ProtocolError> {
        if head.rsv1 {
            return Ok(());
        }
        let continues = match (head.opcode, self.partial.as_deref()) {
            (OP_TEXT, None) => None,
            (OP_CONTINUATION, Some(partial)) if partial.text && !partial.compressed => {
                Some(partial)
            }
            _ => return Ok(()),
        };
        let so_far = continues.map_or(0, |partial| partial.len);
        if so_far.saturating_add(head.payload_len) > self.limits.max_message {
            return Err(ProtocolError::MessageTooBig);
        }
        let Ok(payload_len) = u32::try_from(head.payload_len) else {
            return Ok(());
        };
        let done = self.early.checked as usize;
        let start = head.header_len + done;
        if buf.len() <= start {
            return Ok(());
        }
        if done == 0 {
            // The message's text so far, for a continuation.
            self.early.utf8 = continues
                .map(|partial| partial.utf8.clone())
                .unwrap_or_default();
        }
        let piece = &mut buf[start..];
        unmask(piece, rotate(head.mask, done));
        if !self.early.utf8.feed(piece) {
            return Err(ProtocolError::InvalidUtf8);
        }
        // Less than the whole frame: it has not all arrived.
        self.early.checked = u32::try_from(buf.len() - head.header_len).unwrap_or(payload_len);
        Ok(())
    }

    /// Inflates one frame of a compressed message, within what is left of the message limit.
    fn inflate(
        &mut self,
        payload: &[u8],
        fin: bool,
        so_far: usize,
    ) -> Result<BytesMut, ProtocolError> {
        let Some(inflater) = self.inflater.as_mut() else {
            return Err(ProtocolError::CompressionNotNegotiated);
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
    ) -> Result<Option<Event>, ProtocolError> {
        match opcode {
            OP_TEXT | OP_BINARY => {
                if self.partial.is_some() {
                    return Err(ProtocolError::NewMessageInFragmented);
                }
                let text = opcode == OP_TEXT;
                let payload = if compressed {
                    self.inflate(&payload, fin, 0)?
                } else {
                    payload
                };
                if payload.len() > self.limits.max_message {
                    return Err(ProtocolError::MessageTooBig);
                }
                if fin {
                    return complete(text, payload.freeze()).map(Some);
                }
                let mut utf8 = Utf8Check::default();
                if text && !utf8.feed(&payload) {
                    return Err(ProtocolError::InvalidUtf8);
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
                    return Err(ProtocolError::OrphanContinuation);
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
                    return Err(ProtocolError::MessageTooBig);
                }
                if partial.text && !partial.utf8.feed(&payload) {
                    return Err(ProtocolError::InvalidUtf8);
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
                    return Err(ProtocolError::InvalidUtf8);
                }
                if self.streams {
                    return Ok(Some(Event::End(payload.freeze())));
                }
                complete(partial.text, partial.data.freeze()).map(Some)
            }
            OP_PING => Ok(Some(Event::Ping(payload.freeze()))),
            OP_PONG => Ok(Some(Event::Pong)),
            OP_CLOSE => super::close::parse(&payload).map(|close| Some(Event::Close(close))),
            opcode => Err(ProtocolError::ReservedOpcode(opcode)),
        }
    }
}

/// The masking key for the payload from byte `offset` on.
fn rotate(mask: [u8; 4], offset: usize) -> [u8; 4] {
    let mut mask = mask;
    mask.rotate_left(offset % 4);
    mask
}

fn complete(text: bool, payload: Bytes) -> Result<Event, ProtocolError> {
    if text {
        let text = Text::from_utf8(payload).ok_or(ProtocolError::InvalidUtf8)?;
        Ok(Event::Message(Message::Text(text)))
    } else {
        Ok(Event::Message(Message::Binary(payload)))
    }
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
fn parse_head(buf: &[u8]) -> Option<Result<Head, ProtocolError>> {
    let [first, second, ..] = *buf else {
        return None;
    };
    let fin = first & 0x80 != 0;
    let opcode = first & 0x0F;
    // RSV1 is permessage-deflate's, checked by the decoder; RSV2 and RSV3 are never used.
    let rsv1 = first & 0x40 != 0;
    if first & 0x30 != 0 {
        return Some(Err(ProtocolError::ReservedBits));
    }
    if second & 0x80 == 0 {
        return Some(Err(ProtocolError::Unmasked));
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
                return Some(Err(ProtocolError::LengthTopBit));
            }
            usize::try_from(len).unwrap_or(usize::MAX)
        }
    };
    if opcode >= 0x8 && (!fin || payload_len > 125) {
        return Some(Err(ProtocolError::BadControlFrame));
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

    fn decode_all(bytes: &[u8]) -> Result<Vec<Event>, ProtocolError> {
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

    /// The decoder is part of every connection's reader: what only some connections use (an
    /// inflater, a fragmented message in progress) is boxed.
    #[test]
    fn the_decoder_stays_small() {
        assert!(size_of::<Decoder>() <= 64, "{} bytes", size_of::<Decoder>());
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
        assert_eq!(next().unwrap_err(), ProtocolError::MessageTooBig);
    }

    #[test]
    fn violations_get_their_errors_and_codes() {
        use ProtocolError as E;
        let error = |bytes: Vec<u8>| decode_all(&bytes).unwrap_err();
        let cases = [
            (client_frame(0xC1, b"x"), E::CompressionNotNegotiated, 1002),
            (client_frame(0xA1, b"x"), E::ReservedBits, 1002),
            (client_frame(0x83, b""), E::ReservedOpcode(3), 1002),
            (client_frame(0x09, b""), E::BadControlFrame, 1002),
            (client_frame(0x89, &[0; 126]), E::BadControlFrame, 1002),
            (client_frame(0x80, b"x"), E::OrphanContinuation, 1002),
            (client_frame(0x81, &[0xff]), E::InvalidUtf8, 1007),
            // A surrogate's first bytes fail at once, before the message ends.
            (client_frame(0x01, &[0xed, 0xa0]), E::InvalidUtf8, 1007),
            (client_frame(0x88, &[0x03]), E::OneByteClose, 1002),
            (
                client_frame(0x88, &[0x03, 0xed]),
                E::InvalidCloseCode(1005),
                1002,
            ),
            (
                client_frame(0x88, &[0x03, 0xe8, 0xff]),
                E::InvalidCloseReason,
                1007,
            ),
            (
                client_frame(0x82, &vec![0u8; (1 << 20) + 1]),
                E::FrameTooBig,
                1009,
            ),
        ];
        for (bytes, expected, code) in cases {
            let got = error(bytes);
            assert_eq!(got, expected);
            assert_eq!(got.code(), code, "{expected}");
        }
        let mut unmasked = client_frame(0x81, b"x");
        unmasked[1] &= 0x7F;
        assert_eq!(error(unmasked), E::Unmasked);
        let mut nested = client_frame(0x01, b"a");
        nested.extend(client_frame(0x81, b"b"));
        assert_eq!(error(nested), E::NewMessageInFragmented);
        let mut top_bit = vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0];
        top_bit.extend_from_slice(&[1, 2, 3, 4]);
        assert_eq!(error(top_bit), E::LengthTopBit);
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

    fn negotiated() -> crate::proto::deflate::Negotiated {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::SEC_WEBSOCKET_EXTENSIONS,
            http::HeaderValue::from_static("permessage-deflate"),
        );
        crate::proto::deflate::negotiate(&crate::proto::deflate::Deflate::default(), &headers)
            .unwrap()
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
            Ok::<_, ProtocolError>(events)
        };
        // "hi" as a stored block ended by a sync flush, its `00 00 ff ff` stripped.
        let hi = [0x00, 0x02, 0x00, 0xfd, 0xff, b'h', b'i', 0x00];
        let events = decode(&client_frame(0xC1, &hi)).unwrap();
        assert!(matches!(&events[0], Event::Message(m) if m.as_text() == Some("hi")));
        let mut split = client_frame(0x41, &hi[..6]);
        split.extend(client_frame(0x80, &hi[6..]));
        let events = decode(&split).unwrap();
        assert!(matches!(&events[0], Event::Message(m) if m.as_text() == Some("hi")));
        let code = |bytes: Vec<u8>| decode(&bytes).unwrap_err().code();
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

    /// Feeds `bytes` one read of `step` bytes at a time; the events, or the error with the
    /// bytes fed when it came.
    fn decode_in_reads(
        bytes: &[u8],
        step: usize,
        max_message: usize,
    ) -> (Vec<Event>, Option<(ProtocolError, usize)>) {
        let mut decoder = Decoder::new(Limits {
            max_frame: 1 << 20,
            max_message,
        });
        let mut buf = BytesMut::new();
        let mut events = Vec::new();
        for (i, piece) in bytes.chunks(step).enumerate() {
            buf.extend_from_slice(piece);
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(event)) => events.push(event),
                    Ok(None) => break,
                    Err(error) => return (events, Some((error, (i + 1) * step))),
                }
            }
        }
        (events, None)
    }

    /// Invalid UTF-8 fails the connection as soon as it arrives, also inside a frame that
    /// arrives in pieces (Autobahn 6.4.3, 6.4.4); valid text in pieces decodes as whole.
    #[test]
    fn invalid_text_fails_as_soon_as_it_arrives() {
        let text = "κόσμε".repeat(40);
        for step in [1, 3, 7, 64] {
            let (events, error) =
                decode_in_reads(&client_frame(0x81, text.as_bytes()), step, 1 << 20);
            assert!(error.is_none(), "{step}");
            assert!(matches!(&events[..], [Event::Message(m)] if m.as_text() == Some(&*text)));
        }
        // 100 valid bytes, then a byte that no UTF-8 has, then 100 more.
        let mut bad = vec![b'a'; 100];
        bad.push(0xFF);
        bad.extend([b'b'; 100]);
        let frame = client_frame(0x81, &bad);
        let (_, error) = decode_in_reads(&frame, 10, 1 << 20);
        let (error, fed) = error.unwrap();
        assert_eq!(error, ProtocolError::InvalidUtf8);
        assert_eq!(
            fed, 110,
            "failed at the read that brought the bad byte (8 + 101 bytes)"
        );
        // The same in a continuation, after a first fragment that cut a character.
        let mut message = client_frame(0x01, &"aé".as_bytes()[..2]);
        let head = message.len();
        message.extend(client_frame(
            0x80,
            &[
                &"é".as_bytes()[1..],
                &[b'x'; 50],
                &[0xC0, 0x80],
                &[b'y'; 200],
            ]
            .concat(),
        ));
        let (_, error) = decode_in_reads(&message, 8, 1 << 20);
        let (error, fed) = error.unwrap();
        assert_eq!(error, ProtocolError::InvalidUtf8);
        assert!(fed < head + 4 + 4 + 60, "{fed}");
        // A text frame over the message limit fails at its header, before its text.
        let (_, error) = decode_in_reads(&frame, 10, 150);
        assert_eq!(error.unwrap(), (ProtocolError::MessageTooBig, 10));
        // Binary is not text: the same bytes pass.
        let (events, error) = decode_in_reads(&client_frame(0x82, &bad), 10, 1 << 20);
        assert!(error.is_none());
        assert!(matches!(&events[..], [Event::Message(m)] if m.len() == 201));
    }
}
