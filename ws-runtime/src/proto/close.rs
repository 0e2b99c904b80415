//! Close frame payloads (RFC 6455 §5.5.1, §7.4): reading the peer's code and reason, writing
//! ours.

use bytes::Bytes;

use super::ProtocolError;
use crate::message::{Close, truncate_reason};

/// Reads a close frame's payload: no payload means no code (1005); otherwise a code the RFC
/// allows on the wire and a UTF-8 reason.
pub(crate) fn parse(payload: &[u8]) -> Result<Close, ProtocolError> {
    match payload {
        [] => Ok(Close::new(Close::NO_STATUS, "")),
        [_] => Err(ProtocolError::OneByteClose),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !Close::is_sendable(code) {
                return Err(ProtocolError::InvalidCloseCode(code));
            }
            let reason =
                std::str::from_utf8(reason).map_err(|_| ProtocolError::InvalidCloseReason)?;
            Ok(Close::new(code, reason))
        }
    }
}

/// Our close frame's payload: the code, then the reason cut to fit a control frame. The
/// caller answers [`Close::NO_STATUS`] with an empty payload instead.
pub(crate) fn payload(close: &Close) -> Bytes {
    let reason = truncate_reason(&close.reason);
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&close.code.to_be_bytes());
    payload.extend_from_slice(reason.as_bytes());
    payload.into()
}
