//! What a test learns when a handshake, a connection or a plain HTTP request does not go as
//! planned: a refused handshake ([`Refusal`]), the errors of connecting, of a connection and of
//! an HTTP request.

use std::fmt;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http::header::HeaderMap;

use super::Response;
#[cfg(doc)]
use super::{Client, HttpRequest, TestServer};
use crate::{Close, Message};

/// A refused handshake: the HTTP reply the server sent instead of `101 Switching Protocols`.
///
/// Compare [`status`](Refusal::status) with a [`StatusCode`] or a plain number, and
/// [`body`](Refusal::body) with a string:
///
/// ```
/// # async fn demo(server: &ws::test::TestServer) {
/// let refusal = server.connect("/").expect_refusal().await;
/// assert_eq!(refusal.status(), 403);
/// assert_eq!(refusal.status(), http::StatusCode::FORBIDDEN);
/// assert_eq!(refusal.body(), "Nope. Valid password required.");
/// assert_eq!(refusal.header("retry-after"), None);
/// # }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "test")))]
#[derive(Debug, Clone)]
// Boxed: it travels inside `ConnectError`, which should stay small.
pub struct Refusal(pub(super) Box<Response>);

impl Refusal {
    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.0.status()
    }

    /// All response headers.
    pub fn headers(&self) -> &HeaderMap {
        self.0.headers()
    }

    /// The first value of a response header, if it is visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.0.header(name)
    }

    /// The body as text (invalid UTF-8 replaced by `U+FFFD`).
    pub fn body(&self) -> &str {
        self.0.body()
    }

    /// The body as bytes.
    pub fn body_bytes(&self) -> &Bytes {
        self.0.body_bytes()
    }

    /// The whole reply: a [`Response`], for its HTTP version or to decode its body as JSON.
    pub fn reply(&self) -> &Response {
        &self.0
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Why [`TestServer::connect`] did not give a [`Client`].
#[cfg_attr(docsrs, doc(cfg(feature = "test")))]
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The server answered with another HTTP reply than 101.
    #[error("handshake refused: {0}")]
    Refused(Refusal),
    /// No complete answer within the timeout.
    #[error("no handshake answer within {0:?}")]
    Timeout(Duration),
    /// Connecting, writing or reading failed.
    #[error("connection failed: {0}")]
    Io(#[source] io::Error),
    /// The request could not be built: a path without a leading `/`, an invalid header.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The server's answer was not valid HTTP, or a 101 with a wrong `Sec-WebSocket-Accept`.
    #[error("invalid response: {0}")]
    InvalidResponse(String),
}

impl ConnectError {
    /// The refusal, if the server answered with another HTTP reply than 101.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            ConnectError::Refused(refusal) => Some(refusal),
            _ => None,
        }
    }
}

/// What a [`Client`] did not get.
#[cfg_attr(docsrs, doc(cfg(feature = "test")))]
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Nothing arrived within the client's timeout.
    #[error("nothing received within {0:?}")]
    Timeout(Duration),
    /// The server closed the connection with this code and reason (when a message was
    /// expected), or had already closed it.
    #[error("the server closed the connection: {0}")]
    Closed(Close),
    /// A message of another kind than expected (binary for `recv_text`, text for
    /// `recv_binary`, any message for `expect_no_message`).
    #[error("unexpected message: {0:?}")]
    Unexpected(Message),
    /// The TCP connection ended without a close frame.
    #[error("the connection ended without a close frame")]
    Ended,
    /// The connection failed: an I/O or WebSocket protocol error.
    #[error("connection failed: {0}")]
    Connection(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A message was not JSON of the expected shape ([`Client::recv_json`]).
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    #[error("the message is not the expected JSON: {0}")]
    Json(#[source] serde_json::Error),
}

/// Why a plain HTTP request ([`TestServer::get`], [`TestServer::http`]) got no [`Response`].
///
/// Any status is a response, 404 and 500 included: this error means there was none.
///
/// ```
/// # async fn demo(server: &ws::test::TestServer) {
/// use std::time::Duration;
///
/// let err = server.get("/never").timeout(Duration::from_millis(100)).await.unwrap_err();
/// assert!(matches!(err, ws::test::HttpError::Timeout(_)));
/// assert_eq!(err.to_string(), "no HTTP response within 100ms");
/// # }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "test")))]
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// No complete response within the request's timeout ([`HttpRequest::timeout`]).
    #[error("no HTTP response within {0:?}")]
    Timeout(Duration),
    /// Connecting, writing or reading failed.
    #[error("connection failed: {0}")]
    Io(#[source] io::Error),
    /// The request could not be built: a path without a leading `/`, an invalid header.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The server's answer was not valid HTTP/1.x, or it ended before the whole response.
    #[error("invalid response: {0}")]
    InvalidResponse(String),
}
