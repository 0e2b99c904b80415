//! An HTTP response as a test sees it: status, headers and body, whatever request it answers.

use std::fmt;

use bytes::Bytes;
use http::header::HeaderMap;
use http::{StatusCode, Version};

#[cfg(doc)]
use super::{Refusal, TestServer};

/// An HTTP response: its status, headers and body, read in full.
///
/// [`TestServer::get`] and [`TestServer::http`] return one, so does a raw request
/// ([`raw::Request::send`](crate::test::raw::Request::send), where it is also named
/// [`raw::Reply`](crate::test::raw::Reply)), and a [`Refusal`] holds the one that refused a
/// handshake ([`Refusal::reply`]). Compare
/// [`status`](Response::status) with a [`StatusCode`] or a plain number, and
/// [`body`](Response::body) with a string:
///
/// ```
/// # async fn demo(server: &ws::test::TestServer) -> Result<(), ws::test::HttpError> {
/// let response = server.get("/stats").await?;
/// assert_eq!(response.status(), 200);
/// assert_eq!(response.status(), http::StatusCode::OK);
/// assert_eq!(response.header("Content-Type"), Some("text/plain; charset=utf-8"));
/// assert_eq!(response.body(), "1 connected");
/// assert_eq!(response.body_bytes().as_ref(), b"1 connected");
/// # Ok(())
/// # }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "test")))]
#[derive(Debug, Clone)]
pub struct Response {
    status: StatusCode,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
    text: String,
}

impl Response {
    pub(super) fn new(
        status: StatusCode,
        version: Version,
        headers: HeaderMap,
        body: Bytes,
    ) -> Self {
        Response {
            status,
            version,
            headers,
            text: String::from_utf8_lossy(&body).into_owned(),
            body,
        }
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The HTTP version of the response.
    pub fn version(&self) -> Version {
        self.version
    }

    /// All headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The first value of a header (the name in any case), if it is visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as text (invalid UTF-8 replaced by `U+FFFD`); empty for a 101.
    pub fn body(&self) -> &str {
        &self.text
    }

    /// The body as bytes.
    pub fn body_bytes(&self) -> &Bytes {
        &self.body
    }

    /// The body decoded from JSON (feature `json`), whatever the `Content-Type`.
    ///
    /// ```
    /// # async fn demo(server: &ws::test::TestServer) -> Result<(), Box<dyn std::error::Error>> {
    /// #[derive(serde::Deserialize)]
    /// struct Stats {
    ///     clients: usize,
    /// }
    ///
    /// let stats: Stats = server.get("/stats.json").await?.json()?;
    /// assert_eq!(stats.clients, 1);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// When the body is not JSON of this shape.
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

/// The status, then `: ` and the body if there is one: `401 Unauthorized: Token required.`
impl fmt::Display for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.status)?;
        if !self.text.is_empty() {
            write!(f, ": {}", self.text)?;
        }
        Ok(())
    }
}
