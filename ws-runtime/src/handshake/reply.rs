//! The handshake's two answers: [`Accept`], the 101 being prepared, and [`Reject`], any
//! other HTTP reply; and the 101 itself.

use std::fmt;

use bytes::Bytes;
use http::StatusCode;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use warp::reply::Response;

use super::Request;
use crate::cluster::User;

/// The 101 reply being prepared: `on_handshake` may add headers and cookies and choose the
/// subprotocol.
///
/// ```
/// use ws::{Accept, Request};
///
/// fn shape(req: &Request, accept: &mut Accept) {
///     accept.header("x-server", "ws").cookie("seen=1; Path=/; HttpOnly");
///     if req.protocols().any(|p| p == "chat.v2") {
///         accept.protocol("chat.v2").expect("the client offered it");
///     }
/// }
/// ```
#[derive(Debug, Default)]
pub struct Accept {
    headers: HeaderMap,
    protocol: Option<String>,
    user: Option<User>,
    offered: Vec<String>,
    invalid_header: bool,
}

/// The subprotocol given to [`Accept::protocol`] was not offered by the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the client did not offer subprotocol `{0}`")]
pub struct NotOffered(pub String);

impl Accept {
    pub(crate) fn new(request: &Request) -> Self {
        Accept {
            offered: request.protocols().map(str::to_owned).collect(),
            ..Accept::default()
        }
    }

    /// Adds a header to the 101 reply. A name or value that is not valid HTTP is dropped and
    /// logged (and fails the handshake with 500), since sending it would break the reply.
    pub fn header(&mut self, name: &str, value: &str) -> &mut Self {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            self.headers.append(name, value);
        } else {
            tracing::error!(name, "invalid header in on_handshake's Accept::header");
            self.invalid_header = true;
        }
        self
    }

    /// Says which user this connection is (a key from your authentication): a delivery or a
    /// close can then address every connection of that user, on every node of a cluster
    /// ([`Recipients::user`](crate::Recipients::user),
    /// [`Endpoint::close_user`](crate::Endpoint::close_user)), and
    /// [`Endpoint::user`](crate::Endpoint::user) tells it.
    ///
    /// ```
    /// fn on_handshake(req: &ws::Request, accept: &mut ws::Accept) -> Option<()> {
    ///     let name = req.query("user").filter(|name| !name.is_empty())?;
    ///     accept.user(name);
    ///     Some(())
    /// }
    /// ```
    pub fn user(&mut self, user: impl Into<User>) -> &mut Self {
        self.user = Some(user.into());
        self
    }

    /// The user set with [`user`](Accept::user), taken for the connection.
    pub(crate) fn take_user(&mut self) -> Option<User> {
        self.user.take()
    }

    /// Adds a `Set-Cookie` header, e.g. `"session=abc; Path=/; HttpOnly"`.
    pub fn cookie(&mut self, cookie: &str) -> &mut Self {
        self.header(header::SET_COOKIE.as_str(), cookie)
    }

    /// Chooses the subprotocol echoed in `Sec-WebSocket-Protocol`. It must be one the client
    /// offered ([`Request::protocols`]).
    ///
    /// # Errors
    ///
    /// [`NotOffered`] if the client did not offer it; the choice is then unchanged.
    pub fn protocol(&mut self, protocol: &str) -> Result<&mut Self, NotOffered> {
        if self.offered.iter().any(|p| p == protocol) {
            self.protocol = Some(protocol.to_owned());
            Ok(self)
        } else {
            Err(NotOffered(protocol.to_owned()))
        }
    }

    /// The subprotocol chosen so far.
    pub fn chosen_protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }
}

/// A refused handshake: a complete HTTP reply with any status but 101.
///
/// ```
/// use ws::Reject;
///
/// let nope = Reject::forbidden("Nope. Valid password required.");
/// let later = Reject::new(http::StatusCode::SERVICE_UNAVAILABLE)
///     .header("retry-after", "30")
///     .body("try again later");
/// # let _ = (nope, later);
/// ```
#[derive(Debug, Clone)]
pub struct Reject(Box<RejectInner>);

// Boxed: a refusal is the cold path, and a small `Reject` keeps `Result<S, Reject>` cheap.
#[derive(Debug, Clone)]
struct RejectInner {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reject {
    /// A reply with this status and an empty body. An informational status (1xx, including
    /// 101), which would not be a refusal, becomes `500 Internal Server Error` and is logged.
    pub fn new(status: StatusCode) -> Self {
        let status = if status.is_informational() {
            tracing::error!(%status, "Reject with an informational status; answering 500");
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            status
        };
        Reject(Box::new(RejectInner {
            status,
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }))
    }

    /// A reply with this status and a plain-text body.
    pub fn with_body(status: StatusCode, body: impl Into<Bytes>) -> Self {
        Reject::new(status).body(body)
    }

    /// `400 Bad Request` with a plain-text body.
    pub fn bad_request(body: impl Into<Bytes>) -> Self {
        Reject::with_body(StatusCode::BAD_REQUEST, body)
    }

    /// `401 Unauthorized` with a plain-text body.
    pub fn unauthorized(body: impl Into<Bytes>) -> Self {
        Reject::with_body(StatusCode::UNAUTHORIZED, body)
    }

    /// `403 Forbidden` with a plain-text body.
    pub fn forbidden(body: impl Into<Bytes>) -> Self {
        Reject::with_body(StatusCode::FORBIDDEN, body)
    }

    /// `409 Conflict` with a plain-text body: what is asked for is taken (a unique name, a
    /// seat already occupied).
    pub fn conflict(body: impl Into<Bytes>) -> Self {
        Reject::with_body(StatusCode::CONFLICT, body)
    }

    /// `404 Not Found` with a plain-text body.
    pub fn not_found(body: impl Into<Bytes>) -> Self {
        Reject::with_body(StatusCode::NOT_FOUND, body)
    }

    /// `500 Internal Server Error` with a plain-text body.
    pub fn internal_error(body: impl Into<Bytes>) -> Self {
        Reject::with_body(StatusCode::INTERNAL_SERVER_ERROR, body)
    }

    /// Sets the body. Unless a `Content-Type` header is set, it is sent as
    /// `text/plain; charset=utf-8`.
    #[must_use]
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.0.body = body.into();
        self
    }

    /// Adds a header. An invalid name or value is dropped and logged.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            self.0.headers.append(name, value);
        } else {
            tracing::error!(name, "invalid header in Reject::header; dropped");
        }
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.0.headers
    }

    /// The body.
    pub fn body_bytes(&self) -> &Bytes {
        &self.0.body
    }

    pub(crate) fn into_response(self) -> Response {
        let RejectInner {
            status,
            headers,
            body,
        } = *self.0;
        let mut response = Response::new(body.into());
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        if !response.headers().contains_key(header::CONTENT_TYPE) {
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
        }
        response
    }
}

impl From<StatusCode> for Reject {
    fn from(status: StatusCode) -> Self {
        Reject::new(status)
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.status)?;
        if !self.0.body.is_empty() {
            write!(f, ": {}", String::from_utf8_lossy(&self.0.body))?;
        }
        Ok(())
    }
}

impl std::error::Error for Reject {}

/// The `101 Switching Protocols` reply.
pub(crate) fn switching_protocols(
    key: &HeaderValue,
    accept: Accept,
    protocol: Option<&str>,
    extensions: Option<&str>,
) -> Result<Response, Reject> {
    if accept.invalid_header {
        return Err(Reject::internal_error("Internal Server Error"));
    }
    let mut response = Response::new(warp::hyper::body::Bytes::new().into());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    *headers = accept.headers;
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    let accept_key = accept_key(key.as_bytes());
    headers.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::try_from(accept_key).map_err(|_| Reject::internal_error("bad accept key"))?,
    );
    if let Some(protocol) = protocol {
        let value = HeaderValue::try_from(protocol)
            .map_err(|_| Reject::internal_error("Internal Server Error"))?;
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, value);
    }
    // Only the server's own agreement: it alone knows how frames are encoded.
    headers.remove(header::SEC_WEBSOCKET_EXTENSIONS);
    if let Some(extensions) = extensions {
        let value = HeaderValue::try_from(extensions)
            .map_err(|_| Reject::internal_error("Internal Server Error"))?;
        headers.insert(header::SEC_WEBSOCKET_EXTENSIONS, value);
    }
    Ok(response)
}

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key` (RFC 6455 §4.2.2): the base64 of
/// the SHA-1 of the key followed by the protocol's GUID.
pub(crate) fn accept_key(key: &[u8]) -> String {
    use base64::Engine as _;
    use sha1::Digest as _;
    const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    let mut sha1 = sha1::Sha1::new();
    sha1.update(key);
    sha1.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(sha1.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of RFC 6455 §1.3.
    #[test]
    fn the_accept_key_of_the_rfc_example() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
