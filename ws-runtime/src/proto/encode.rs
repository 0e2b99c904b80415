//! Server frames: encoded once (header and shared payload) so that a broadcast's receivers
//! share them, compressed per receiver when permessage-deflate was agreed, and cut into
//! fragments for large messages.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;

use super::deflate::{self, Deflater};
use super::{OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT};
use crate::message::{Close, Message};

/// A server frame, encoded once: its header and its payload, shared by every receiver.
#[derive(Clone, Debug)]
pub(crate) struct OutFrame {
    head: [u8; 10],
    header_len: u8,
    pub(crate) payload: Bytes,
    /// For a data message large enough that some socket compresses it: its compressed
    /// payload, computed by the first receiver without context takeover and shared by the
    /// others with the same parameters (the key).
    deflated: Option<Arc<deflate::Shared>>,
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

    /// A text or binary data frame for this message. `share_from` is the smallest payload
    /// that a receiver of this frame may compress ([`Deflate::threshold`] of its socket,
    /// `usize::MAX` without deflate): a frame at least that large carries the cell that
    /// shares its compressed bytes among receivers, and nothing is allocated for others.
    ///
    /// [`Deflate::threshold`]: crate::Deflate::threshold
    pub(crate) fn message(message: Message, share_from: usize) -> Self {
        let mut frame = match message {
            Message::Text(text) => OutFrame::new(OP_TEXT, text.into_bytes()),
            Message::Binary(bytes) => OutFrame::new(OP_BINARY, bytes),
        };
        if frame.payload.len() >= share_from {
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

    /// The rest of a frame that was written in part: bytes without a header, written as
    /// they are.
    pub(crate) fn rest(bytes: Bytes) -> Self {
        OutFrame {
            head: [0; 10],
            header_len: 0,
            payload: bytes,
            deflated: None,
        }
    }

    /// Whether this is [the rest of a frame](OutFrame::rest).
    pub(crate) fn is_rest(&self) -> bool {
        self.header_len == 0
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
        OutFrame::new(OP_CLOSE, super::close::payload(close))
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

    /// Whether this frame carries the cell that shares its compressed bytes.
    #[cfg(test)]
    pub(crate) fn shares_compression(&self) -> bool {
        self.deflated.is_some()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::deflate::Deflate;

    #[test]
    fn out_frames_encode_lengths() {
        assert_eq!(
            OutFrame::message(Message::text("hi"), usize::MAX).head(),
            &[0x81, 2]
        );
        assert_eq!(
            OutFrame::message(Message::binary(vec![0; 300]), usize::MAX).head(),
            &[0x82, 126, 1, 44]
        );
        let big = OutFrame::message(Message::binary(vec![0; 70_000]), usize::MAX);
        assert_eq!(big.head()[..2], [0x82, 127]);
        assert_eq!(big.len(), 10 + 70_000);
        assert_eq!(OutFrame::close(&Close::new(1005, "")).head(), &[0x88, 0]);
        let close = OutFrame::close(&Close::new(1000, "bye"));
        assert_eq!(close.head(), &[0x88, 5]);
        assert_eq!(&close.payload[..], &[0x03, 0xe8, b'b', b'y', b'e']);
    }

    fn negotiated() -> deflate::Negotiated {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::SEC_WEBSOCKET_EXTENSIONS,
            http::HeaderValue::from_static("permessage-deflate"),
        );
        deflate::negotiate(&deflate::Deflate::default(), &headers).unwrap()
    }

    #[test]
    fn a_broadcast_is_compressed_once_without_context_takeover() {
        let share_from = Deflate::default().get_threshold();
        let frame = OutFrame::message(Message::text("shared ".repeat(100)), share_from);
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
        let small = OutFrame::message(Message::text("tiny"), share_from).deflate(&mut a);
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
        let frame = OutFrame::message(Message::binary(noise), share_from);
        for deflater in [&mut a, &mut b] {
            let sent = frame.clone().deflate(deflater);
            assert_eq!(sent.head()[0], 0x82, "no RSV1");
            assert_eq!(sent.payload, frame.payload);
        }
    }
}
