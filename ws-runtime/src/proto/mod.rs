//! RFC 6455 and RFC 7692 without I/O: client bytes in, [`Event`]s out; messages in,
//! [`OutFrame`]s out. Nothing here reads a socket, waits or knows a connection: the
//! connection task (`conn`) feeds it bytes and writes what it encodes.
//!
//! | file | owns |
//! | --- | --- |
//! | `decode.rs` | [`Decoder`]: frame headers, limits, reassembly, [`Event`] |
//! | `encode.rs` | [`OutFrame`]: server frames encoded once, fragments |
//! | `close.rs` | close payloads: the peer's code and reason, ours |
//! | `error.rs` | [`ProtocolError`]: each broken rule → its close code and reason |
//! | `mask.rs` | unmasking (an `unsafe` call of the AVX2 copy, with its SAFETY line) |
//! | `utf8.rs` | UTF-8 validation across fragments, failing at the first bad byte |
//! | `deflate.rs` | permessage-deflate: the settings, the negotiation, both directions |

mod close;
mod decode;
pub(crate) mod deflate;
mod encode;
mod error;
mod mask;
mod utf8;

pub(crate) use decode::{Decoder, Event, Limits};
pub(crate) use encode::{FrameHead, OutFrame};
pub(crate) use error::ProtocolError;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;
