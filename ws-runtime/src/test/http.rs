//! Plain HTTP requests to the test server, for the routes served beside a socket.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http::Method;

use super::errors::HttpError;
use super::raw;
use super::response::Response;
#[cfg(doc)]
use super::{DEFAULT_TIMEOUT, TestServer};

/// A plain HTTP/1.1 request being prepared by [`TestServer::get`] or [`TestServer::http`];
/// `.await` it, or [`send`](HttpRequest::send) it, for the [`Response`].
///
/// It goes over a TCP connection of its own with `Host: 127.0.0.1:PORT` and
/// `Connection: close`, and a body is sent with its `Content-Length`. The response is read in
/// full, whether it is sized, chunked or ends with the connection.
///
/// ```
/// # async fn demo(server: &ws::test::TestServer) -> Result<(), ws::test::HttpError> {
/// use std::time::Duration;
///
/// let response = server
///     .http(http::Method::PUT, "/rooms/lobby")
///     .header("content-type", "application/json")
///     .body(r#"{"topic":"tests"}"#)
///     .timeout(Duration::from_secs(2))
///     .send()
///     .await?;
/// assert_eq!(response.status(), 201);
/// # Ok(())
/// # }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "test")))]
#[derive(Debug, Clone)]
#[must_use = "a request is sent only when awaited"]
pub struct HttpRequest {
    addr: SocketAddr,
    method: Method,
    target: String,
    headers: Vec<(String, String)>,
    body: Bytes,
    timeout: Duration,
}

impl HttpRequest {
    /// A request with this method for `target` on the server at `addr`, with the default
    /// timeout.
    pub(super) fn new(addr: SocketAddr, method: Method, target: &str) -> Self {
        HttpRequest {
            addr,
            method,
            target: target.to_owned(),
            headers: Vec::new(),
            body: Bytes::new(),
            timeout: super::DEFAULT_TIMEOUT,
        }
    }

    /// Adds a request header. One the request sets itself (`Host`, `Connection`) is replaced.
    /// Invalid names or values fail the request with [`HttpError::InvalidRequest`].
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sends this body, with its `Content-Length` unless a `Content-Length` or
    /// `Transfer-Encoding` header is given. Default: none.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// How long connecting, sending and reading the whole response may take. Default:
    /// [`DEFAULT_TIMEOUT`] (10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sends the request and reads the response; awaiting the request does the same.
    ///
    /// # Errors
    ///
    /// [`HttpError::InvalidRequest`] for a path that does not start with `/` or a header
    /// that is not valid HTTP, [`HttpError::Io`] when the connection fails,
    /// [`HttpError::InvalidResponse`] when the answer is not valid HTTP/1.x or ends early,
    /// [`HttpError::Timeout`] when the whole response takes longer than the timeout. Any
    /// status is a response, not an error.
    pub async fn send(self) -> Result<Response, HttpError> {
        raw::check_target(&self.target).map_err(HttpError::InvalidRequest)?;
        raw::Request::plain(self.addr, &self.target, "close")
            .method(self.method.as_str())
            .headers(&self.headers)
            .body(self.body)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|err| {
                err.sort(
                    HttpError::Timeout,
                    HttpError::Io,
                    HttpError::InvalidRequest,
                    HttpError::InvalidResponse,
                )
            })
    }
}

impl IntoFuture for HttpRequest {
    type Output = Result<Response, HttpError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}
