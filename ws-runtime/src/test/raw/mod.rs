//! The wire by hand, for tests of what a well-behaved client never sends (feature `test`).
//!
//! [`Client`](crate::test::Client) only speaks correct WebSocket. To test how a server meets
//! malformed handshakes and protocol violations, this module writes both by hand:
//!
//! - [`Request`] (from [`TestServer::raw`](crate::test::TestServer::raw)): a handshake with any
//!   method and headers, some left out; [`send`](Request::send) returns the typed [`Reply`]
//!   (status, headers, body: a [`Response`](crate::test::Response)),
//!   [`upgrade`](Request::upgrade) the reply of a 101 and the connection ([`Upgraded`]) for raw
//!   frames. hyper's client writes the request and reads the reply.
//! - [`Frame`]: a masked client frame, with FIN, RSV bits, opcode, mask and length field under
//!   the test's control; [`close_payload`] for a close frame's code and reason.
//! - [`read_frame`], [`read_close`] and [`expect_end`]: the server's frames, its close code and
//!   reason, the end of the connection, from any [`AsyncRead`](tokio::io::AsyncRead).
//!
//! Every wait has a timeout ([`DEFAULT_TIMEOUT`](crate::test::DEFAULT_TIMEOUT) unless told
//! otherwise) and fails with [`RawError`] instead of hanging.
//!
//! ```
//! use tokio::io::AsyncWriteExt;
//! use ws::Close;
//! use ws::test::raw::{self, Frame};
//!
//! struct Quiet;
//!
//! #[ws::websocket]
//! impl Quiet {}
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let socket = ws::Socket::new(Quiet);
//!     let server = ws::test::serve(&socket).await;
//!
//!     // A handshake without `Connection: Upgrade` is answered with a real 426.
//!     let reply = server.raw("/").without("connection").send().await?;
//!     assert_eq!(reply.status(), 426);
//!     assert_eq!(reply.header("upgrade"), Some("websocket"));
//!
//!     // A ping split in two is a protocol error: 1002, then the end of the connection.
//!     let (reply, mut tcp) = server.raw("/").upgrade().await?;
//!     assert_eq!(reply.status(), 101);
//!     tcp.write_all(&Frame::ping("hi").fin(false).encode()).await?;
//!     assert_eq!(raw::read_close(&mut tcp).await?, Close::new(1002, "Protocol error"));
//!     tcp.write_all(&Frame::close(1002, "").encode()).await?;
//!     raw::expect_end(&mut tcp).await?;
//!
//!     server.shutdown().await;
//!     Ok(())
//! }
//! ```

mod frame;
mod http;

use std::io;
use std::time::Duration;

pub use self::frame::{
    Frame, MASK_KEY, ServerFrame, close_payload, expect_end, opcode, read_close, read_frame,
    read_frame_within,
};
pub(crate) use self::http::check_target;
pub use self::http::{Reply, Request, SAMPLE_ACCEPT, SAMPLE_KEY, Upgraded};

/// What a raw exchange did not get.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RawError {
    /// Nothing (or not enough) arrived within the timeout.
    #[error("nothing received within {0:?}")]
    Timeout(Duration),
    /// The connection ended before a whole frame.
    #[error("the connection ended")]
    Ended,
    /// Connecting, writing or reading failed.
    #[error("connection failed: {0}")]
    Io(#[from] io::Error),
    /// The request is not valid HTTP: a method, target, header name or value.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The reply is not valid HTTP/1.x, or it is incomplete.
    #[error("invalid response: {0}")]
    InvalidResponse(String),
    /// [`Request::upgrade`] got another reply than 101.
    #[error("not upgraded: {0}")]
    NotUpgraded(Box<Reply>),
    /// The server sent what no server may: a masked frame, a broken close payload.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// [`expect_end`] got these bytes instead of the end.
    #[error("{} unexpected bytes", .0.len())]
    Unexpected(Vec<u8>),
}

impl RawError {
    /// This failure as one of a request's: a timeout, an I/O error, an invalid request, or else
    /// an invalid response (with this error's message when it is another one).
    pub(crate) fn sort<E>(
        self,
        timeout: impl FnOnce(Duration) -> E,
        io: impl FnOnce(io::Error) -> E,
        invalid_request: impl FnOnce(String) -> E,
        invalid_response: impl FnOnce(String) -> E,
    ) -> E {
        match self {
            RawError::Timeout(after) => timeout(after),
            RawError::Io(err) => io(err),
            RawError::InvalidRequest(what) => invalid_request(what),
            RawError::InvalidResponse(what) => invalid_response(what),
            other => invalid_response(other.to_string()),
        }
    }
}
