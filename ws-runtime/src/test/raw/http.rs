//! Handshake requests by hand, sent with hyper's client over a fresh TCP connection: the typed
//! reply, and after a 101 the connection itself for raw frames. Plain HTTP requests
//! ([`TestServer::http`](crate::test::TestServer::http)) go the same way.

use std::convert::Infallible;
use std::future::poll_fn;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http::header::{HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri, Version};
use hyper::body::{Body, Frame, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};

use super::RawError;
use crate::test::{DEFAULT_TIMEOUT, Response};

/// The reply to a raw request: a [`Response`], under the name this module has always used.
pub type Reply = Response;

/// The `Sec-WebSocket-Key` a [`Request`] sends unless told otherwise: the example of RFC 6455
/// §1.3, so that the expected `Sec-WebSocket-Accept` is [`SAMPLE_ACCEPT`].
pub const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The `Sec-WebSocket-Accept` that answers [`SAMPLE_KEY`].
pub const SAMPLE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// Largest response body read.
const MAX_BODY: usize = 16 << 20;

/// A handshake request written by hand: any method, any headers, headers left out.
///
/// [`new`](Request::new) (or [`TestServer::raw`](crate::test::TestServer::raw)) starts from a
/// valid handshake: `GET`, `Host: 127.0.0.1:PORT`, `Upgrade: websocket`,
/// `Connection: Upgrade`, `Sec-WebSocket-Key:` [`SAMPLE_KEY`] and
/// `Sec-WebSocket-Version: 13`. [`send`](Request::send) returns the server's [`Reply`] (a
/// [`Response`]);
/// [`upgrade`](Request::upgrade) expects a 101 and returns the connection too, for raw frames.
/// hyper's client sends the request and reads the reply (chunked, sized or until the end),
/// on a connection of its own each time.
///
/// ```
/// # async fn demo(server: &ws::test::TestServer) -> Result<(), ws::test::raw::RawError> {
/// let reply = server.raw("/").method("POST").header("content-length", "0").send().await?;
/// assert_eq!(reply.status(), 405);
/// assert_eq!(reply.header("allow"), Some("GET"));
///
/// let reply = server.raw("/").without("sec-websocket-key").send().await?;
/// assert_eq!(reply.body(), "Missing Sec-WebSocket-Key header.");
///
/// let (reply, mut tcp) = server.raw("/").upgrade().await?;
/// assert_eq!(reply.header("sec-websocket-accept"), Some(ws::test::raw::SAMPLE_ACCEPT));
/// # drop(tcp);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a request is sent only by `send` or `upgrade`"]
pub struct Request {
    addr: SocketAddr,
    local_ip: Option<IpAddr>,
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Bytes,
    timeout: Duration,
}

impl Request {
    /// A valid handshake for `target` (a path and query such as `"/ws?name=ada"`) on the
    /// server at `addr`.
    pub fn new(addr: SocketAddr, target: &str) -> Request {
        Request::plain(addr, target, "Upgrade")
            .append_header("upgrade", "websocket")
            .append_header("sec-websocket-key", SAMPLE_KEY)
            .append_header("sec-websocket-version", "13")
    }

    /// A `GET` of `target` with `Host` and this `Connection` header, nothing else.
    pub(crate) fn plain(addr: SocketAddr, target: &str, connection: &str) -> Request {
        Request {
            addr,
            local_ip: None,
            method: "GET".to_owned(),
            target: target.to_owned(),
            headers: vec![
                ("host".to_owned(), addr.to_string()),
                ("connection".to_owned(), connection.to_owned()),
            ],
            body: Bytes::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Uses this method instead of `GET`.
    pub fn method(mut self, method: &str) -> Self {
        method.clone_into(&mut self.method);
        self
    }

    /// Sets a header, replacing every earlier value of it (the handshake's own included).
    pub fn header(self, name: &str, value: &str) -> Self {
        self.without(name).append_header(name, value)
    }

    /// Adds a header, keeping the earlier values of the same name.
    pub fn append_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Leaves a header out, the handshake's own ones too (`Host`, `Connection`, ...).
    pub fn without(mut self, name: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }

    /// Sets these headers in order: the first of each name replaces the request's own ones of
    /// that name, the next ones add to it.
    pub(crate) fn headers(mut self, headers: &[(String, String)]) -> Self {
        let mut replaced: Vec<&str> = Vec::new();
        for (name, value) in headers {
            if replaced.iter().any(|r| r.eq_ignore_ascii_case(name)) {
                self = self.append_header(name, value);
            } else {
                replaced.push(name);
                self = self.header(name, value);
            }
        }
        self
    }

    /// Sends this body. Unless a `Content-Length` or `Transfer-Encoding` is given with
    /// [`header`](Request::header), a body that is not empty is sent with its
    /// `Content-Length`, and an empty one without.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Connects from this local address, for a test that needs another client IP: every
    /// 127.x.y.z is loopback on Linux.
    pub fn local_ip(mut self, ip: IpAddr) -> Self {
        self.local_ip = Some(ip);
        self
    }

    /// How long connecting and the reply may take. Default: [`DEFAULT_TIMEOUT`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sends the request and returns the reply; the connection is closed after it (an
    /// upgraded one without a close frame).
    ///
    /// # Errors
    ///
    /// [`RawError::InvalidRequest`] for a method, target or header that is not valid HTTP,
    /// [`RawError::Io`] when the connection fails, [`RawError::InvalidResponse`] when the
    /// reply is not valid HTTP/1.x, [`RawError::Timeout`] when it takes too long.
    pub async fn send(self) -> Result<Reply, RawError> {
        Ok(self.exchange().await?.0)
    }

    /// Sends the request, expects `101 Switching Protocols` and returns its reply and the
    /// connection, ready for raw frames.
    ///
    /// # Errors
    ///
    /// [`RawError::NotUpgraded`] with the reply when it is not a 101; otherwise as
    /// [`send`](Request::send).
    pub async fn upgrade(self) -> Result<(Reply, Upgraded), RawError> {
        match self.exchange().await? {
            (reply, Some(upgraded)) => Ok((reply, upgraded)),
            (reply, None) => Err(RawError::NotUpgraded(Box::new(reply))),
        }
    }

    /// The reply, and the connection when it is a 101.
    pub(crate) async fn exchange(self) -> Result<(Reply, Option<Upgraded>), RawError> {
        let timeout = self.timeout;
        tokio::time::timeout(timeout, self.run())
            .await
            .unwrap_or(Err(RawError::Timeout(timeout)))
    }

    fn build(&self) -> Result<http::Request<Full>, RawError> {
        let invalid = |what: String| RawError::InvalidRequest(what);
        let method = Method::from_bytes(self.method.as_bytes())
            .map_err(|_| invalid(format!("`{}` is not a method", self.method)))?;
        let uri = Uri::try_from(self.target.as_str())
            .map_err(|_| invalid(format!("`{}` is not a request target", self.target)))?;
        let mut request = http::Request::new(Full(Some(self.body.clone())));
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        *request.version_mut() = Version::HTTP_11;
        for (name, value) in &self.headers {
            let name = HeaderName::try_from(name.as_str())
                .map_err(|_| invalid(format!("`{name}` is not a valid header name")))?;
            let value = HeaderValue::try_from(value.as_str())
                .map_err(|_| invalid(format!("`{value}` is not a valid header value")))?;
            request.headers_mut().append(name, value);
        }
        Ok(request)
    }

    async fn run(self) -> Result<(Reply, Option<Upgraded>), RawError> {
        let request = self.build()?;
        let tcp = match self.local_ip {
            None => TcpStream::connect(self.addr).await?,
            Some(ip) => {
                let socket = match ip {
                    IpAddr::V4(_) => TcpSocket::new_v4()?,
                    IpAddr::V6(_) => TcpSocket::new_v6()?,
                };
                socket.bind(SocketAddr::new(ip, 0))?;
                socket.connect(self.addr).await?
            }
        };
        let _ = tcp.set_nodelay(true);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(hyper_error)?;
        // Its errors reach `send_request` too; after a 101 it hands the connection over.
        tokio::spawn(connection.with_upgrades());
        let mut response = sender.send_request(request).await.map_err(hyper_error)?;
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            let upgraded = hyper::upgrade::on(&mut response)
                .await
                .map_err(hyper_error)?;
            let parts = upgraded
                .downcast::<TokioIo<TcpStream>>()
                .map_err(|_| RawError::InvalidResponse("the upgrade lost the connection".into()))?;
            let (head, _) = response.into_parts();
            let reply = Response::new(head.status, head.version, head.headers, Bytes::new());
            let upgraded = Upgraded {
                tcp: parts.io.into_inner(),
                ahead: parts.read_buf,
            };
            return Ok((reply, Some(upgraded)));
        }
        let (head, mut body) = response.into_parts();
        let mut bytes = Vec::new();
        while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            if let Ok(data) = frame.map_err(hyper_error)?.into_data() {
                bytes.extend_from_slice(&data);
            }
            if bytes.len() > MAX_BODY {
                return Err(RawError::InvalidResponse(
                    "the reply body is too large".into(),
                ));
            }
        }
        Ok((
            Response::new(head.status, head.version, head.headers, bytes.into()),
            None,
        ))
    }
}

/// The path and query of a request made by the test kit: it starts with `/` and has no white
/// space or control characters.
pub(crate) fn check_target(target: &str) -> Result<(), String> {
    if target.starts_with('/')
        && !target
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        Ok(())
    } else {
        Err(format!(
            "`{target}` is not a path and query starting with `/`"
        ))
    }
}

/// A request body known in full: sent with its `Content-Length`, none when it is empty.
struct Full(Option<Bytes>);

impl Body for Full {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(
            self.0
                .take()
                .filter(|b| !b.is_empty())
                .map(|b| Ok(Frame::data(b))),
        )
    }

    fn is_end_stream(&self) -> bool {
        self.0.as_ref().is_none_or(Bytes::is_empty)
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.0.as_ref().map_or(0, |b| b.len() as u64))
    }
}

/// A reply that is not HTTP/1.x, or incomplete (its head, or a body shorter than announced),
/// is an invalid response; anything else is the connection's failure.
fn hyper_error(err: hyper::Error) -> RawError {
    let cut_short = std::error::Error::source(&err)
        .and_then(|source| source.downcast_ref::<io::Error>())
        .filter(|source| source.kind() == io::ErrorKind::UnexpectedEof);
    if let Some(source) = cut_short {
        RawError::InvalidResponse(format!("{err}: {source}"))
    } else if err.is_parse() || err.is_incomplete_message() {
        RawError::InvalidResponse(err.to_string())
    } else {
        RawError::Io(io::Error::other(err))
    }
}

/// The TCP connection after a `101 Switching Protocols`, for raw frames: write with
/// [`AsyncWriteExt`](tokio::io::AsyncWriteExt), read with [`read_frame`](super::read_frame).
///
/// Reads first give the bytes that arrived with the reply (a server may send frames at once),
/// then read from the connection.
#[derive(Debug)]
pub struct Upgraded {
    tcp: TcpStream,
    ahead: Bytes,
}

impl Upgraded {
    /// The TCP connection, for its socket options (`set_zero_linger` for a reset).
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// The TCP connection and the bytes already read from it after the reply.
    pub fn into_parts(self) -> (TcpStream, Bytes) {
        (self.tcp, self.ahead)
    }
}

impl AsyncRead for Upgraded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.ahead.is_empty() {
            return Pin::new(&mut self.tcp).poll_read(cx, buf);
        }
        let n = self.ahead.len().min(buf.remaining());
        buf.put_slice(&self.ahead[..n]);
        self.ahead.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Upgraded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}
