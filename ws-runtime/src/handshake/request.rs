//! `Request`: the upgrade request as `on_handshake` sees it (path, query, headers, cookies,
//! peer address, offered subprotocols).

use std::net::SocketAddr;

use http::header::{self, HeaderMap};
use http::{Method, Uri};

use super::header_tokens;

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
