//! WebSocket frames by hand: masked client frames, good or deliberately bad, and a reader of
//! the server's frames.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::RawError;
use crate::Close;
use crate::test::DEFAULT_TIMEOUT;

/// The opcodes of RFC 6455 §5.2, for [`Frame::new`] and [`ServerFrame::opcode`]. The values
/// left out (3–7, 0xB–0xF) are reserved: a frame with one is a protocol error.
pub mod opcode {
    /// 0x0: the continuation of a fragmented message.
    pub const CONTINUATION: u8 = 0x0;
    /// 0x1: a text message (or its first fragment).
    pub const TEXT: u8 = 0x1;
    /// 0x2: a binary message (or its first fragment).
    pub const BINARY: u8 = 0x2;
    /// 0x8: a close frame.
    pub const CLOSE: u8 = 0x8;
    /// 0x9: a ping.
    pub const PING: u8 = 0x9;
    /// 0xA: a pong.
    pub const PONG: u8 = 0xA;
}

/// The masking key of [`Frame::new`]: any key is legal, a fixed one keeps the bytes on the
/// wire the same from run to run.
pub const MASK_KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Largest server frame payload [`read_frame`] accepts: a bad length must not allocate the
/// memory it claims.
const MAX_PAYLOAD: u64 = 1 << 30;

/// A client frame, built as the server expects it or broken on purpose.
///
/// [`new`](Frame::new) makes a final frame (FIN set, RSV bits clear) masked with
/// [`MASK_KEY`]; the builder methods change one thing each, so a test says exactly what is
/// wrong with its frame. [`encode`](Frame::encode) gives the bytes to write.
///
/// ```
/// use ws::test::raw::{Frame, opcode};
///
/// // A masked text frame, the first of a fragmented message.
/// let first = Frame::text("hel").fin(false);
/// // Broken on purpose: an unmasked frame, a fragmented ping, RSV1 without permessage-deflate,
/// // a reserved opcode, a length field that promises more than follows.
/// let unmasked = Frame::text("hello").unmasked();
/// let fragmented_ping = Frame::ping("?").fin(false);
/// let rsv1 = Frame::binary(vec![1, 2]).rsv1(true);
/// let reserved = Frame::new(0x3, "");
/// let short = Frame::binary(vec![0; 10]).declared_len(1000);
///
/// assert_eq!(first.encode()[..2], [0x01, 0x83]);
/// assert_eq!(unmasked.encode(), b"\x81\x05hello");
/// assert_eq!(rsv1.first_byte(), 0xC2);
/// # let _ = (fragmented_ping, reserved, short);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a frame is sent only when its bytes are written"]
pub struct Frame {
    fin: bool,
    rsv: u8,
    opcode: u8,
    payload: Vec<u8>,
    mask: Option<[u8; 4]>,
    declared_len: Option<u64>,
}

impl Frame {
    /// A final frame with this opcode (any 4-bit value, reserved ones too) and payload,
    /// masked with [`MASK_KEY`].
    pub fn new(opcode: u8, payload: impl Into<Vec<u8>>) -> Frame {
        Frame {
            fin: true,
            rsv: 0,
            opcode: opcode & 0x0f,
            payload: payload.into(),
            mask: Some(MASK_KEY),
            declared_len: None,
        }
    }

    /// A text frame; the payload need not be valid UTF-8.
    pub fn text(payload: impl Into<Vec<u8>>) -> Frame {
        Frame::new(opcode::TEXT, payload)
    }

    /// A binary frame.
    pub fn binary(payload: impl Into<Vec<u8>>) -> Frame {
        Frame::new(opcode::BINARY, payload)
    }

    /// A continuation frame; clear FIN with [`fin(false)`](Frame::fin) for one in the middle.
    pub fn continuation(payload: impl Into<Vec<u8>>) -> Frame {
        Frame::new(opcode::CONTINUATION, payload)
    }

    /// A ping.
    pub fn ping(payload: impl Into<Vec<u8>>) -> Frame {
        Frame::new(opcode::PING, payload)
    }

    /// A pong.
    pub fn pong(payload: impl Into<Vec<u8>>) -> Frame {
        Frame::new(opcode::PONG, payload)
    }

    /// A close frame with this code and reason ([`close_payload`]); any code, any bytes, so
    /// that unsendable codes and reasons that are not UTF-8 can be tried.
    pub fn close(code: u16, reason: impl AsRef<[u8]>) -> Frame {
        Frame::new(opcode::CLOSE, close_payload(code, reason.as_ref()))
    }

    /// Sets or clears FIN (set by default).
    pub fn fin(mut self, fin: bool) -> Self {
        self.fin = fin;
        self
    }

    /// Sets or clears RSV1, the bit permessage-deflate uses for a compressed message.
    pub fn rsv1(mut self, rsv1: bool) -> Self {
        self.rsv = if rsv1 {
            self.rsv | 0b100
        } else {
            self.rsv & 0b011
        };
        self
    }

    /// Sets the three RSV bits at once: `0b100` is RSV1, `0b010` RSV2, `0b001` RSV3. Higher
    /// bits are ignored.
    pub fn rsv(mut self, bits: u8) -> Self {
        self.rsv = bits & 0b111;
        self
    }

    /// Masks with this key instead of [`MASK_KEY`]. The all-zero key is legal and leaves the
    /// payload unchanged on the wire.
    pub fn mask(mut self, key: [u8; 4]) -> Self {
        self.mask = Some(key);
        self
    }

    /// Sends the frame unmasked, as only a server may.
    pub fn unmasked(mut self) -> Self {
        self.mask = None;
        self
    }

    /// Writes `len` in the length field instead of the payload's length, in the shortest form
    /// that holds it: a frame that promises more (or less) than follows. With an empty payload
    /// and the zero [`mask`](Frame::mask) this is the header of a payload that the test writes
    /// itself afterwards, unmasked and uncopied.
    pub fn declared_len(mut self, len: u64) -> Self {
        self.declared_len = Some(len);
        self
    }

    /// The first byte on the wire: FIN, the RSV bits and the opcode.
    pub fn first_byte(&self) -> u8 {
        u8::from(self.fin) << 7 | self.rsv << 4 | self.opcode
    }

    /// The bytes on the wire: the header, the masking key if any, the (masked) payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(14 + self.payload.len());
        out.push(self.first_byte());
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let len = self.declared_len.unwrap_or(self.payload.len() as u64);
        match (u8::try_from(len), u16::try_from(len)) {
            (Ok(short), _) if short <= 125 => out.push(mask_bit | short),
            (_, Ok(medium)) => {
                out.push(mask_bit | 0x7e);
                out.extend_from_slice(&medium.to_be_bytes());
            }
            _ => {
                out.push(mask_bit | 0x7f);
                out.extend_from_slice(&len.to_be_bytes());
            }
        }
        match self.mask {
            Some(key) => {
                out.extend_from_slice(&key);
                out.extend(
                    self.payload
                        .iter()
                        .zip(key.iter().cycle())
                        .map(|(b, k)| b ^ k),
                );
            }
            None => out.extend_from_slice(&self.payload),
        }
        out
    }
}

impl From<Frame> for Vec<u8> {
    fn from(frame: Frame) -> Vec<u8> {
        frame.encode()
    }
}

/// A close frame's payload: the code in network byte order, then the reason's bytes.
///
/// ```
/// assert_eq!(ws::test::raw::close_payload(1000, b"bye"), b"\x03\xe8bye");
/// ```
pub fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason);
    payload
}

/// A frame the server sent, as [`read_frame`] found it on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFrame {
    /// Whether FIN is set.
    pub fin: bool,
    /// The three RSV bits: `0b100` is RSV1 (a compressed message with permessage-deflate).
    pub rsv: u8,
    /// The opcode, see [`opcode`].
    pub opcode: u8,
    /// The payload (server frames are not masked).
    pub payload: Vec<u8>,
}

impl ServerFrame {
    /// The first byte on the wire: FIN, the RSV bits and the opcode (`0x81` for a final text
    /// frame, `0xC1` for a compressed one, `0x8A` for a pong).
    pub fn first_byte(&self) -> u8 {
        u8::from(self.fin) << 7 | self.rsv << 4 | self.opcode
    }

    /// Whether RSV1 is set.
    pub fn rsv1(&self) -> bool {
        self.rsv & 0b100 != 0
    }
}

/// Reads the server's next frame, waiting up to [`DEFAULT_TIMEOUT`].
///
/// ```
/// # async fn demo(mut tcp: tokio::net::TcpStream) -> Result<(), ws::test::raw::RawError> {
/// let frame = ws::test::raw::read_frame(&mut tcp).await?;
/// assert_eq!((frame.first_byte(), frame.payload.as_slice()), (0x81, b"hi".as_slice()));
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// [`RawError::Timeout`] when no whole frame arrives in time, [`RawError::Ended`] when the
/// stream ends first, [`RawError::Protocol`] for a masked frame or one of more than 1 GiB,
/// [`RawError::Io`] when reading fails.
pub async fn read_frame<R>(reader: &mut R) -> Result<ServerFrame, RawError>
where
    R: AsyncRead + Unpin + ?Sized,
{
    read_frame_within(reader, DEFAULT_TIMEOUT).await
}

/// [`read_frame`] with another timeout than [`DEFAULT_TIMEOUT`]. A frame that was only part
/// read when the time ran out is lost: wait for a quiet connection only.
///
/// # Errors
///
/// As [`read_frame`].
pub async fn read_frame_within<R>(
    reader: &mut R,
    timeout: Duration,
) -> Result<ServerFrame, RawError>
where
    R: AsyncRead + Unpin + ?Sized,
{
    tokio::time::timeout(timeout, read_one(reader))
        .await
        .unwrap_or(Err(RawError::Timeout(timeout)))
}

async fn read_one<R>(reader: &mut R) -> Result<ServerFrame, RawError>
where
    R: AsyncRead + Unpin + ?Sized,
{
    let mut head = [0u8; 2];
    reader.read_exact(&mut head).await.map_err(read_error)?;
    if head[1] & 0x80 != 0 {
        return Err(RawError::Protocol("a masked server frame".into()));
    }
    let len = match head[1] & 0x7f {
        126 => u64::from(reader.read_u16().await.map_err(read_error)?),
        127 => reader.read_u64().await.map_err(read_error)?,
        n => u64::from(n),
    };
    if len > MAX_PAYLOAD {
        return Err(RawError::Protocol(format!("a server frame of {len} bytes")));
    }
    let mut payload = vec![0; usize::try_from(len).unwrap_or(usize::MAX)];
    reader.read_exact(&mut payload).await.map_err(read_error)?;
    Ok(ServerFrame {
        fin: head[0] & 0x80 != 0,
        rsv: (head[0] >> 4) & 0b111,
        opcode: head[0] & 0x0f,
        payload,
    })
}

fn read_error(err: std::io::Error) -> RawError {
    if err.kind() == std::io::ErrorKind::UnexpectedEof {
        RawError::Ended
    } else {
        RawError::Io(err)
    }
}

/// Reads server frames until a close frame, skipping the others, and returns its code and
/// reason (1005, [`Close::NO_STATUS`], for a close frame without a payload). Waits up to
/// [`DEFAULT_TIMEOUT`] for each frame.
///
/// ```
/// # async fn demo(mut tcp: tokio::net::TcpStream) -> Result<(), ws::test::raw::RawError> {
/// use ws::test::raw::{self, Frame};
/// use tokio::io::AsyncWriteExt;
///
/// tcp.write_all(&Frame::text("hello").unmasked().encode()).await?;
/// let close = raw::read_close(&mut tcp).await?;
/// assert_eq!(close, ws::Close::new(1002, "Protocol error"));
/// raw::expect_end(&mut tcp).await?;
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// [`RawError::Protocol`] for a close payload of one byte or a reason that is not UTF-8;
/// otherwise as [`read_frame`].
pub async fn read_close<R>(reader: &mut R) -> Result<Close, RawError>
where
    R: AsyncRead + Unpin + ?Sized,
{
    loop {
        let frame = read_frame(reader).await?;
        if frame.opcode != opcode::CLOSE {
            continue;
        }
        return match frame.payload.as_slice() {
            [] => Ok(Close::new(Close::NO_STATUS, "")),
            [_] => Err(RawError::Protocol("a close payload of one byte".into())),
            [high, low, reason @ ..] => {
                let reason = std::str::from_utf8(reason)
                    .map_err(|_| RawError::Protocol("a close reason that is not UTF-8".into()))?;
                Ok(Close::new(u16::from_be_bytes([*high, *low]), reason))
            }
        };
    }
}

/// Waits up to [`DEFAULT_TIMEOUT`] for the server to end the connection (end of stream, or a
/// reset), with nothing more sent before.
///
/// # Errors
///
/// [`RawError::Unexpected`] with the bytes that arrived instead, [`RawError::Timeout`] when
/// the connection stays open, [`RawError::Io`] when reading fails otherwise.
pub async fn expect_end<R>(reader: &mut R) -> Result<(), RawError>
where
    R: AsyncRead + Unpin + ?Sized,
{
    let mut buf = [0u8; 1024];
    match tokio::time::timeout(DEFAULT_TIMEOUT, reader.read(&mut buf)).await {
        Err(_) => Err(RawError::Timeout(DEFAULT_TIMEOUT)),
        Ok(Ok(0)) => Ok(()),
        Ok(Ok(n)) => Err(RawError::Unexpected(buf[..n].to_vec())),
        Ok(Err(err))
            if matches!(
                err.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
            ) =>
        {
            Ok(())
        }
        Ok(Err(err)) => Err(RawError::Io(err)),
    }
}
