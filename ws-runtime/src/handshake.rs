//! The opening handshake: protocol checks, the `Request` handed to `on_handshake`, the 101
//! reply it shapes through `Accept`, and `Reject`, any other HTTP reply.

use std::fmt;
use std::net::SocketAddr;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use warp::reply::Response;

use crate::config::{Config, Origins};

/// The upgrade request, as `on_handshake` sees it.
///
/// ```
/// # fn check(req: &ws::Request) {
/// let token = req.query("token");
/// let session = req.cookie("session");
/// let agent = req.header("user-agent");
/// let from = req.remote_addr();
/// # }
/// ```
#[derive(Debug)]
pub struct Request {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    remote_addr: Option<SocketAddr>,
    query: Vec<(String, String)>,
    cookies: Vec<(String, String)>,
    protocols: Vec<String>,
}

impl Request {
    pub(crate) fn new(
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        remote_addr: Option<SocketAddr>,
    ) -> Self {
        let query = uri
            .query()
            .map(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let cookies = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| {
                let (name, value) = pair.split_once('=')?;
                let value = value.trim();
                let value = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(value);
                Some((name.trim().to_owned(), value.to_owned()))
            })
            .collect();
        let protocols = header_tokens(&headers, &header::SEC_WEBSOCKET_PROTOCOL)
            .map(str::to_owned)
            .collect();
        Request {
            method,
            uri,
            headers,
            remote_addr,
            query,
            cookies,
            protocols,
        }
    }

    /// The request method (always `GET` by the time `on_handshake` runs).
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The full request URI (path and query).
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The request path, e.g. `/ws`.
    pub fn path(&self) -> &str {
        self.uri.path()
    }

    /// The raw query string, without the `?`.
    pub fn query_string(&self) -> Option<&str> {
        self.uri.query()
    }

    /// The first value of a query parameter, percent-decoded.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a query parameter, in order.
    pub fn query_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.query
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// All request headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The first value of a header, if it is valid visible ASCII.
    pub fn header(&self, name: impl header::AsHeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The value of a cookie from the `Cookie` header.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// All cookies, in the order the client sent them.
    pub fn cookies(&self) -> impl Iterator<Item = (&str, &str)> {
        self.cookies.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The peer's address. When the server runs behind a transport without socket addresses
    /// (which `ws::serve` never does), this is `0.0.0.0:0`.
    pub fn remote_addr(&self) -> SocketAddr {
        self.remote_addr
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The `Origin` header: present on every browser request, absent from most other clients.
    pub fn origin(&self) -> Option<&str> {
        self.header(header::ORIGIN)
    }

    /// The `Host` header.
    pub fn host(&self) -> Option<&str> {
        self.header(header::HOST)
    }

    /// The subprotocols the client offered in `Sec-WebSocket-Protocol`, in its order of
    /// preference.
    pub fn protocols(&self) -> impl Iterator<Item = &str> {
        self.protocols.iter().map(String::as_str)
    }
}

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
            offered: request.protocols.clone(),
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

/// Comma-separated tokens of every instance of a header, trimmed, empty ones skipped.
fn header_tokens<'a>(
    headers: &'a HeaderMap,
    name: &'a HeaderName,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    header_tokens(headers, name).any(|t| t.eq_ignore_ascii_case(token))
}

/// RFC 6455 §4.2.1 checks, in order; the `Sec-WebSocket-Key` on success.
pub(crate) fn check_protocol(method: &Method, headers: &HeaderMap) -> Result<HeaderValue, Reject> {
    if method != Method::GET {
        return Err(Reject::with_body(
            StatusCode::METHOD_NOT_ALLOWED,
            "A WebSocket handshake must use GET.",
        )
        .header("allow", "GET"));
    }
    if !has_token(headers, &header::UPGRADE, "websocket")
        || !has_token(headers, &header::CONNECTION, "upgrade")
    {
        return Err(Reject::with_body(
            StatusCode::UPGRADE_REQUIRED,
            "This endpoint speaks WebSocket: send `Upgrade: websocket` and `Connection: Upgrade`.",
        )
        .header("upgrade", "websocket")
        .header("connection", "upgrade")
        .header("sec-websocket-version", "13"));
    }
    let key = match headers.get(header::SEC_WEBSOCKET_KEY) {
        Some(key) if is_valid_key(key.as_bytes()) => key.clone(),
        Some(_) => {
            return Err(Reject::bad_request(
                "Sec-WebSocket-Key must be 16 bytes in base64.",
            ));
        }
        None => return Err(Reject::bad_request("Missing Sec-WebSocket-Key header.")),
    };
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        return Err(Reject::with_body(
            StatusCode::UPGRADE_REQUIRED,
            "Unsupported WebSocket version; this server speaks version 13.",
        )
        .header("sec-websocket-version", "13"));
    }
    Ok(key)
}

/// A key is the base64 encoding of 16 bytes: 22 characters of the alphabet and `==`.
fn is_valid_key(key: &[u8]) -> bool {
    key.len() == 24
        && key.ends_with(b"==")
        && key[..22]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
}

/// Whether the origin policy admits this request.
pub(crate) fn origin_allowed(origins: &Origins, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let same_host = || {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        match (origin_authority(origin), host) {
            (Some((authority, default_port)), Some(host)) => {
                authority_eq(authority, host, default_port)
            }
            _ => false,
        }
    };
    match origins {
        Origins::Any => true,
        Origins::SameHost => same_host(),
        Origins::AllowList(list) => {
            list.iter().any(|o| o.eq_ignore_ascii_case(origin)) || same_host()
        }
    }
}

/// `scheme://authority` → (authority, the scheme's default port).
fn origin_authority(origin: &str) -> Option<(&str, &'static str)> {
    let (scheme, rest) = origin.split_once("://")?;
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => "80",
        "https" | "wss" => "443",
        _ => return None,
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    (!authority.is_empty()).then_some((authority, default_port))
}

/// Compares `host[:port]` forms, treating an absent port as the scheme's default.
fn authority_eq(origin: &str, host: &str, default_port: &str) -> bool {
    fn split(authority: &str) -> (&str, Option<&str>) {
        // `[::1]:8080` keeps its brackets; a bare port follows the last colon outside them.
        match authority.rfind(':') {
            Some(i) if !authority[i..].contains(']') => {
                (&authority[..i], Some(&authority[i + 1..]))
            }
            _ => (authority, None),
        }
    }
    let (oh, op) = split(origin);
    let (hh, hp) = split(host.trim());
    oh.eq_ignore_ascii_case(hh) && op.unwrap_or(default_port) == hp.unwrap_or(default_port)
}

/// Picks the subprotocol: the handler's choice, else the first offer the config supports.
pub(crate) fn choose_protocol(
    config: &Config,
    request: &Request,
    accept: &Accept,
) -> Option<String> {
    accept.protocol.clone().or_else(|| {
        request
            .protocols()
            .find(|offer| config.protocols.iter().any(|p| p == offer))
            .map(str::to_owned)
    })
}

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
    let accept_key = derive_accept_key(key.as_bytes());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn origin_same_host() {
        let ok = headers(&[
            ("host", "localhost:8080"),
            ("origin", "http://localhost:8080"),
        ]);
        assert!(origin_allowed(&Origins::SameHost, &ok));
        let default_port = headers(&[
            ("host", "Example.com"),
            ("origin", "https://example.com:443"),
        ]);
        assert!(origin_allowed(&Origins::SameHost, &default_port));
        let other = headers(&[("host", "localhost:8080"), ("origin", "http://evil.com")]);
        assert!(!origin_allowed(&Origins::SameHost, &other));
        let port = headers(&[
            ("host", "localhost:8080"),
            ("origin", "http://localhost:8081"),
        ]);
        assert!(!origin_allowed(&Origins::SameHost, &port));
        let null = headers(&[("host", "localhost"), ("origin", "null")]);
        assert!(!origin_allowed(&Origins::SameHost, &null));
        let v6 = headers(&[("host", "[::1]:9000"), ("origin", "http://[::1]:9000")]);
        assert!(origin_allowed(&Origins::SameHost, &v6));
        let none = headers(&[("host", "localhost")]);
        assert!(origin_allowed(&Origins::SameHost, &none));
        assert!(origin_allowed(&Origins::Any, &other));
        let list = Origins::AllowList(vec!["HTTP://EVIL.COM".into()]);
        assert!(origin_allowed(&list, &other));
    }

    #[test]
    fn keys() {
        assert!(is_valid_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!is_valid_key(b"dGhlIHNhbXBsZSBub25jZQ="));
        assert!(!is_valid_key(b"dGhlIHNhbXBsZSBub25j!Q=="));
        assert!(!is_valid_key(b""));
    }

    proptest::proptest! {
        /// Whatever a peer sends as method and headers, the checks answer without panicking,
        /// and a refusal is never informational.
        #[test]
        fn checks_never_panic(
            method in "[A-Z]{1,8}",
            pairs in proptest::collection::vec(
                (
                    proptest::sample::select(vec![
                        "upgrade", "connection", "sec-websocket-key", "sec-websocket-version",
                        "origin", "host", "sec-websocket-protocol", "cookie", "x-other",
                    ]),
                    proptest::collection::vec(proptest::num::u8::ANY, 0..40),
                ),
                0..12,
            ),
            query in proptest::collection::vec(proptest::num::u8::ANY, 0..60),
        ) {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                if let Ok(value) = HeaderValue::from_bytes(&value) {
                    map.append(name, value);
                }
            }
            let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
            if let Err(reject) = check_protocol(&method, &map) {
                proptest::prop_assert!(!reject.status().is_informational());
            }
            let _ = origin_allowed(&Origins::SameHost, &map);
            let path_and_query = format!("/ws?{}", String::from_utf8_lossy(&query));
            let uri = path_and_query.parse::<Uri>().unwrap_or_default();
            let request = Request::new(method, uri, map, None);
            let _ = (request.query("a"), request.cookie("b"), request.protocols().count());
        }

        /// A well-formed handshake is accepted whatever its token order, case and extras.
        #[test]
        fn valid_handshakes_pass(
            upper in proptest::bool::ANY,
            extra in "[a-z]{1,10}",
            key in proptest::collection::vec(proptest::num::u8::ANY, 16),
        ) {
            let mut map = HeaderMap::new();
            let (upgrade, connection) = if upper { ("WebSocket", "keep-alive, Upgrade") } else { ("websocket", "upgrade") };
            map.insert(header::UPGRADE, HeaderValue::from_static(upgrade));
            map.insert(header::CONNECTION, HeaderValue::from_str(&format!("{extra}, {connection}")).unwrap());
            let key = encode_base64(&key);
            map.insert(header::SEC_WEBSOCKET_KEY, HeaderValue::from_str(&key).unwrap());
            map.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
            proptest::prop_assert!(check_protocol(&Method::GET, &map).is_ok());
        }
    }

    /// Standard base64 with padding, for the property test's keys.
    fn encode_base64(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[test]
    fn request_parsing() {
        let req = Request::new(
            Method::GET,
            "/ws?password=a%20b&x=1&x=2".parse().unwrap(),
            headers(&[
                ("cookie", "a=1; b=\"two\""),
                ("cookie", "c=3"),
                ("sec-websocket-protocol", "chat, superchat"),
            ]),
            None,
        );
        assert_eq!(req.query("password"), Some("a b"));
        assert_eq!(req.query_all("x").collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(req.cookie("b"), Some("two"));
        assert_eq!(req.cookie("c"), Some("3"));
        assert_eq!(req.protocols().collect::<Vec<_>>(), ["chat", "superchat"]);
        let mut accept = Accept::new(&req);
        assert!(accept.protocol("superchat").is_ok());
        assert_eq!(
            accept.protocol("nope").unwrap_err(),
            NotOffered("nope".into())
        );
        assert_eq!(accept.chosen_protocol(), Some("superchat"));
    }
}
