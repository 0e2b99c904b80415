//! `ProtocolError`: every way a client's bytes can break RFC 6455 or RFC 7692, each with the
//! close code and reason the server fails the connection with.

use std::fmt;

use crate::message::Close;

/// Why the decoder failed a connection. Each variant names one rule the peer broke; the close
/// sent for it comes from [`close`](ProtocolError::close). The reasons sent on the wire are
/// deliberately generic ("Protocol error"): the peer learns the class of its mistake, the
/// server's log and tests learn which rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum ProtocolError {
    /// RSV2 or RSV3 set: no extension here uses them.
    ReservedBits,
    /// RSV1 set though permessage-deflate was not negotiated.
    CompressionNotNegotiated,
    /// RSV1 set on a control or continuation frame.
    CompressedControlOrContinuation,
    /// A client frame without a mask (RFC 6455 §5.1).
    Unmasked,
    /// An opcode RFC 6455 reserves.
    ReservedOpcode(u8),
    /// A 64-bit payload length with its top bit set.
    LengthTopBit,
    /// A control frame that is fragmented or carries more than 125 bytes.
    BadControlFrame,
    /// A text or binary frame while a fragmented message is still open.
    NewMessageInFragmented,
    /// A continuation frame with no fragmented message open.
    OrphanContinuation,
    /// A close frame whose payload is a single byte.
    OneByteClose,
    /// A close code that may not be sent on the wire.
    InvalidCloseCode(u16),
    /// A close reason that is not UTF-8.
    InvalidCloseReason,
    /// A text message (or a fragment of one) that is not UTF-8.
    InvalidUtf8,
    /// Compressed data that does not inflate, or that continues past its final block.
    InvalidCompressedData,
    /// A frame over `Config::max_frame_size`.
    FrameTooBig,
    /// A message over `Config::max_message_size` (after inflation, when compressed).
    MessageTooBig,
}

impl ProtocolError {
    /// The close code this failure is answered with: 1002 for a broken protocol rule, 1007 for
    /// data that is not what it claims to be, 1009 for sizes over the limits.
    pub(crate) fn code(self) -> u16 {
        match self {
            ProtocolError::InvalidUtf8
            | ProtocolError::InvalidCloseReason
            | ProtocolError::InvalidCompressedData => Close::INVALID_DATA,
            ProtocolError::FrameTooBig | ProtocolError::MessageTooBig => Close::TOO_BIG,
            ProtocolError::ReservedBits
            | ProtocolError::CompressionNotNegotiated
            | ProtocolError::CompressedControlOrContinuation
            | ProtocolError::Unmasked
            | ProtocolError::ReservedOpcode(_)
            | ProtocolError::LengthTopBit
            | ProtocolError::BadControlFrame
            | ProtocolError::NewMessageInFragmented
            | ProtocolError::OrphanContinuation
            | ProtocolError::OneByteClose
            | ProtocolError::InvalidCloseCode(_) => Close::PROTOCOL_ERROR,
        }
    }

    /// The reason sent in the close frame.
    fn reason(self) -> &'static str {
        match self {
            ProtocolError::InvalidUtf8 | ProtocolError::InvalidCloseReason => "Invalid UTF-8",
            ProtocolError::InvalidCompressedData => "Invalid compressed data",
            ProtocolError::FrameTooBig | ProtocolError::MessageTooBig => "Message too big",
            ProtocolError::InvalidCloseCode(_) => "Protocol violation",
            _ => "Protocol error",
        }
    }

    /// The close frame the server fails the connection with.
    pub(crate) fn close(self) -> Close {
        Close::new(self.code(), self.reason())
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            ProtocolError::ReservedBits => "reserved bits set",
            ProtocolError::CompressionNotNegotiated => "RSV1 set without permessage-deflate",
            ProtocolError::CompressedControlOrContinuation => {
                "RSV1 set on a control or continuation frame"
            }
            ProtocolError::Unmasked => "unmasked client frame",
            ProtocolError::ReservedOpcode(opcode) => {
                return write!(f, "reserved opcode {opcode:#x}");
            }
            ProtocolError::LengthTopBit => "payload length with the top bit set",
            ProtocolError::BadControlFrame => "fragmented or oversized control frame",
            ProtocolError::NewMessageInFragmented => "new message inside a fragmented message",
            ProtocolError::OrphanContinuation => "continuation without a message",
            ProtocolError::OneByteClose => "close frame with a one-byte payload",
            ProtocolError::InvalidCloseCode(code) => {
                return write!(f, "close code {code} may not be sent");
            }
            ProtocolError::InvalidCloseReason => "close reason is not UTF-8",
            ProtocolError::InvalidUtf8 => "text is not UTF-8",
            ProtocolError::InvalidCompressedData => "invalid compressed data",
            ProtocolError::FrameTooBig => "frame too big",
            ProtocolError::MessageTooBig => "message too big",
        };
        f.write_str(what)
    }
}

impl std::error::Error for ProtocolError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_class_has_its_code_and_reason() {
        let close = |e: ProtocolError| {
            let close = e.close();
            (close.code, close.reason)
        };
        assert_eq!(
            close(ProtocolError::Unmasked),
            (1002, "Protocol error".into())
        );
        assert_eq!(
            close(ProtocolError::InvalidCloseCode(1005)),
            (1002, "Protocol violation".into())
        );
        assert_eq!(
            close(ProtocolError::InvalidCloseReason),
            (1007, "Invalid UTF-8".into())
        );
        assert_eq!(
            close(ProtocolError::InvalidCompressedData),
            (1007, "Invalid compressed data".into())
        );
        assert_eq!(
            close(ProtocolError::FrameTooBig),
            (1009, "Message too big".into())
        );
        assert_eq!(
            ProtocolError::ReservedOpcode(3).to_string(),
            "reserved opcode 0x3"
        );
    }
}
