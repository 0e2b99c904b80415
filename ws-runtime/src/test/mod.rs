//! Test your socket in-process with a real client over 127.0.0.1 (feature `test`).
//!
//! [`serve`] runs a [`Socket`] the way production does (through [`crate::serve`], with
//! `on_start`, the handshake checks, the limits and the graceful shutdown) on an ephemeral
//! port of 127.0.0.1, and [`TestServer::connect`] opens a real WebSocket connection to it,
//! with the query, headers and `Origin` you choose. A refused handshake comes back as a
//! [`Refusal`] with its status, headers and body, which `warp::test::ws()` cannot show.
//! [`raw`] writes what a correct client never sends: handshakes with any method and headers,
//! and frames with any bits, mask and length; it reads the server's frames as they are.
//!
//! Enable it for your tests only:
//!
//! ```toml
//! [dev-dependencies]
//! ws = { version = "0.1", features = ["test"] }
//! ```
//!
//! A complete test of an echo server that wants a token:
//!
//! ```
//! use std::sync::OnceLock;
//!
//! use ws::{ClientId, Close, Endpoint, Message, Reject, Request};
//!
//! #[derive(Default)]
//! struct Echo {
//!     endpoint: OnceLock<Endpoint>,
//! }
//!
//! #[ws::websocket]
//! impl Echo {
//!     fn on_start(&self, endpoint: Endpoint) {
//!         let _ = self.endpoint.set(endpoint);
//!     }
//!
//!     fn on_handshake(&self, req: &Request) -> Result<(), Reject> {
//!         match req.query("token") {
//!             Some("secret") => Ok(()),
//!             _ => Err(Reject::forbidden("Valid token required.")),
//!         }
//!     }
//!
//!     fn on_data(&self, id: ClientId, msg: Message) {
//!         if msg.as_text() == Some("bye") {
//!             let _ = self.endpoint.get().unwrap().close(id, 4000, "see you");
//!         } else {
//!             let _ = self.endpoint.get().unwrap().send(id, msg);
//!         }
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let socket = ws::Socket::new(Echo::default());
//!     let server = ws::test::serve(&socket).await;
//!
//!     let mut client = server.connect("/?token=secret").await?;
//!     client.send_text("hi").await?;
//!     assert_eq!(client.recv_text().await?, "hi");
//!     client.send_binary(vec![1, 2, 3]).await?;
//!     assert_eq!(client.recv_binary().await?, [1, 2, 3].as_slice());
//!     client.send_text("bye").await?;
//!     assert_eq!(client.expect_close().await?, Close::new(4000, "see you"));
//!
//!     let refusal = server.connect("/?token=wrong").expect_refusal().await;
//!     assert_eq!(refusal.status(), 403);
//!     assert_eq!(refusal.body(), "Valid token required.");
//!     assert_eq!(refusal.header("content-type"), Some("text/plain; charset=utf-8"));
//!
//!     server.shutdown().await;
//!     Ok(())
//! }
//! ```

pub mod raw;

use std::fmt;
use std::future::{Future, IntoFuture};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::StatusCode;
use http::header::HeaderMap;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{self, Message as Frame};
use warp::{Filter, Rejection, Reply};

use crate::{Close, Error, Handler, Message, Server, Socket, Text};

/// How long a connect, a receive or a close waits by default before it fails.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves a socket's [`filter`](Socket::filter) at every path on 127.0.0.1 with an ephemeral
/// port, with the socket's lifecycle (`on_start` first, the 1001 shutdown at the end).
///
/// It runs [`ws::serve`](crate::serve) with signals off, so a test's Ctrl-C is left alone;
/// [`TestServer::shutdown`] (or dropping the server) starts the graceful shutdown. Use
/// [`serve_with`] to test your full warp routes.
///
/// ```
/// struct Quiet;
///
/// #[ws::websocket]
/// impl Quiet {}
///
/// # #[tokio::main] async fn main() {
/// let socket = ws::Socket::new(Quiet);
/// let server = ws::test::serve(&socket).await;
/// assert!(server.addr().ip().is_loopback());
/// server.shutdown().await;
/// # }
/// ```
///
/// # Panics
///
/// If 127.0.0.1 cannot be bound.
#[cfg_attr(docsrs, doc(cfg(feature = "test")))]
pub async fn serve<H: Handler>(socket: &Socket<H>) -> TestServer {
    serve_with(crate::serve(socket.filter()).socket(socket)).await
}

/// Runs a configured [`Server`] on 127.0.0.1 with an ephemeral port: your own routes, with
/// every socket given to [`Server::socket`].
///
/// Signals are turned off and a shutdown trigger is added for [`TestServer::shutdown`]; other
/// settings (the handshake timeout, more shutdown futures, `Server::tls`) are kept.
/// [`TestServer::connect`] and [`TestServer::raw`] speak plain TCP: against a server with
/// `Server::tls`, bring your own TLS client to [`TestServer::addr`].
///
/// ```
/// use warp::Filter;
///
/// struct Quiet;
///
/// #[ws::websocket]
/// impl Quiet {}
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let socket = ws::Socket::new(Quiet);
/// let routes = warp::path("ws").and(socket.filter());
/// let server = ws::test::serve_with(ws::serve(routes).socket(&socket)).await;
///
/// let client = server.connect("/ws").await?;
/// drop(client);
/// // Other paths are not routed to the socket: warp answers 404.
/// assert_eq!(server.connect("/").expect_refusal().await.status(), 404);
/// server.shutdown().await;
/// # Ok(())
/// # }
/// ```
///
/// # Panics
///
/// If 127.0.0.1 cannot be bound.
#[cfg_attr(docsrs, doc(cfg(feature = "test")))]
pub async fn serve_with<F>(server: Server<F>) -> TestServer
where
    F: Filter<Error = Rejection> + Clone + Send + Sync + 'static,
    F::Extract: Reply,
{
    let (stop, stopped) = oneshot::channel::<()>();
    let bound = server
        .signals(false)
        .shutdown_on(async {
            let _ = stopped.await;
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|err| panic!("ws::test: {err}"));
    let addr = bound.local_addr();
    TestServer {
        addr,
        stop: Some(stop),
        task: Some(tokio::spawn(bound.run())),
    }
}

/// A server running on 127.0.0.1 for a test, from [`serve`] or [`serve_with`].
///
/// Dropping it starts the graceful shutdown without waiting for it; call
/// [`shutdown`](TestServer::shutdown) to wait.
#[cfg_attr(docsrs, doc(cfg(feature = "test")))]
#[derive(Debug)]
pub struct TestServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), Error>>>,
}

impl TestServer {
    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://127.0.0.1:PORT` followed by `path_and_query`, for other clients.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("ws://{}{path_and_query}", self.addr)
    }

    /// `http://127.0.0.1:PORT`: the `Origin` a browser sends for a page served by this
    /// server, which the default [`Origins::SameHost`](crate::Origins::SameHost) accepts.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Prepares a WebSocket handshake for `path_and_query` (e.g. `"/?token=x"`, `"/ws"`);
    /// await it to connect. Add headers, an `Origin` or subprotocols first.
    ///
    /// The request carries `Host: 127.0.0.1:PORT` and no `Origin`, like a non-browser client.
    ///
    /// ```
    /// # struct Quiet;
    /// # #[ws::websocket]
    /// # impl Quiet {}
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let socket = ws::Socket::new(Quiet);
    /// let server = ws::test::serve(&socket).await;
    /// let client = server
    ///     .connect("/chat?name=ada")
    ///     .origin(&server.origin())
    ///     .header("cookie", "session=abc")
    ///     .await?;
    /// # drop(client);
    /// let refusal = server.connect("/").origin("https://evil.example").expect_refusal().await;
    /// assert_eq!(refusal.status(), 403);
    /// # Ok(())
    /// # }
    /// ```
    pub fn connect(&self, path_and_query: &str) -> Connect {
        Connect {
            addr: self.addr,
            path: path_and_query.to_owned(),
            headers: Vec::new(),
            protocols: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Prepares a handshake written by hand for `path_and_query`, for malformed requests and
    /// raw frames: see [`raw::Request`].
    ///
    /// ```
    /// # struct Quiet;
    /// # #[ws::websocket]
    /// # impl Quiet {}
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let socket = ws::Socket::new(Quiet);
    /// let server = ws::test::serve(&socket).await;
    /// let reply = server.raw("/").header("sec-websocket-version", "8").send().await?;
    /// assert_eq!(reply.status(), 426);
    /// # server.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn raw(&self, path_and_query: &str) -> raw::Request {
        raw::Request::new(self.addr, path_and_query)
    }

    /// Starts the graceful shutdown and waits for it: `on_stop`, every client closed with 1001
    /// "Server shutting down", their `on_close`, then the server task's end. Connected
    /// [`Client`]s answer the close by themselves and keep it for
    /// [`expect_close`](Client::expect_close).
    ///
    /// # Panics
    ///
    /// If the server task panicked or failed.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => panic!("ws::test: the server failed: {err}"),
                Err(err) => panic!("ws::test: the server task failed: {err}"),
            }
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A WebSocket handshake being prepared by [`TestServer::connect`]; `.await` it for the
/// [`Client`], or call [`expect_refusal`](Connect::expect_refusal).
#[cfg_attr(docsrs, doc(cfg(feature = "test")))]
#[derive(Debug, Clone)]
#[must_use = "a handshake is sent only when awaited"]
pub struct Connect {
    addr: SocketAddr,
    path: String,
    headers: Vec<(String, String)>,
    protocols: Vec<String>,
    timeout: Duration,
}

impl Connect {
    /// Adds a request header. A header the handshake sets itself (`Host`, `Upgrade`,
    /// `Connection`, `Sec-WebSocket-Key`, `Sec-WebSocket-Version`) is replaced, so tests
    /// can send malformed handshakes too. Invalid names or values fail the connect with
    /// [`ConnectError::InvalidRequest`].
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sends `Origin: origin`, as a browser would; see [`TestServer::origin`].
    pub fn origin(self, origin: &str) -> Self {
        self.header("origin", origin)
    }

    /// Offers a subprotocol in `Sec-WebSocket-Protocol`; call once per protocol, in order of
    /// preference. The one chosen is [`Client::protocol`].
    pub fn protocol(mut self, protocol: &str) -> Self {
        self.protocols.push(protocol.to_owned());
        self
    }

    /// How long the handshake, and then each receive of the [`Client`], may take. Default:
    /// [`DEFAULT_TIMEOUT`] (10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sends the handshake and returns the refusal.
    ///
    /// # Panics
    ///
    /// If the handshake is accepted or fails without an HTTP answer.
    pub async fn expect_refusal(self) -> Refusal {
        let path = self.path.clone();
        match self.await {
            Ok(_) => panic!(
                "ws::test: expected the handshake for `{path}` to be refused, but it was accepted"
            ),
            Err(ConnectError::Refused(refusal)) => refusal,
            Err(err) => {
                panic!("ws::test: expected the handshake for `{path}` to be refused: {err}")
            }
        }
    }

    async fn run(self) -> Result<Client, ConnectError> {
        let timeout = self.timeout;
        tokio::time::timeout(timeout, self.handshake())
            .await
            .unwrap_or(Err(ConnectError::Timeout(timeout)))
    }

    /// The handshake as a raw request with this key: the headers given replace the
    /// handshake's own of the same name, and add to each other.
    fn request(&self, key: &str) -> Result<raw::Request, ConnectError> {
        let path = &self.path;
        if !path.starts_with('/')
            || path
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(ConnectError::InvalidRequest(format!(
                "`{path}` is not a path and query starting with `/`"
            )));
        }
        let mut request = raw::Request::new(self.addr, path)
            .header("sec-websocket-key", key)
            .timeout(self.timeout);
        if !self.protocols.is_empty() {
            request = request.header("sec-websocket-protocol", &self.protocols.join(", "));
        }
        let mut replaced: Vec<&str> = Vec::new();
        for (name, value) in &self.headers {
            if replaced.iter().any(|r| r.eq_ignore_ascii_case(name)) {
                request = request.append_header(name, value);
            } else {
                replaced.push(name);
                request = request.header(name, value);
            }
        }
        Ok(request)
    }

    async fn handshake(self) -> Result<Client, ConnectError> {
        let key = self
            .headers
            .iter()
            .rev()
            .find(|(name, _)| name.eq_ignore_ascii_case("sec-websocket-key"))
            .map_or_else(generate_key, |(_, key)| key.clone());
        let request = self.request(&key)?;
        let (reply, upgraded) = request.exchange().await.map_err(connect_error)?;
        let Some(upgraded) = upgraded else {
            return Err(ConnectError::Refused(Refusal(Box::new(reply))));
        };
        let expected = derive_accept_key(key.as_bytes());
        if reply.header("sec-websocket-accept") != Some(expected.as_str()) {
            return Err(ConnectError::InvalidResponse(
                "101 without the expected Sec-WebSocket-Accept".into(),
            ));
        }
        let protocol = reply.header("sec-websocket-protocol").map(str::to_owned);
        let (tcp, ahead) = upgraded.into_parts();
        let ws =
            WebSocketStream::from_partially_read(tcp, ahead.to_vec(), Role::Client, None).await;
        Ok(Client::spawn(
            ws,
            self.timeout,
            reply.headers().clone(),
            protocol,
        ))
    }
}

/// A raw exchange's failure as the handshake's.
fn connect_error(err: raw::RawError) -> ConnectError {
    match err {
        raw::RawError::Timeout(timeout) => ConnectError::Timeout(timeout),
        raw::RawError::Io(err) => ConnectError::Io(err),
        raw::RawError::InvalidRequest(what) => ConnectError::InvalidRequest(what),
        other => ConnectError::InvalidResponse(other.to_string()),
    }
}

impl IntoFuture for Connect {
    type Output = Result<Client, ConnectError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

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
pub struct Refusal(Box<raw::Reply>);

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

    /// The whole reply.
    pub fn reply(&self) -> &raw::Reply {
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

/// A WebSocket client connected to a [`TestServer`].
///
/// A task of its own reads from the connection all the time: it answers pings and the
/// server's close at once (so [`TestServer::shutdown`] never waits for a test that is not
/// reading) and keeps what arrives until you receive it. Receives wait up to the client's
/// timeout (10 s by default, [`Connect::timeout`], [`set_timeout`](Client::set_timeout)).
/// Dropping the client drops its TCP connection without a close frame: the server sees 1006.
#[cfg_attr(docsrs, doc(cfg(feature = "test")))]
pub struct Client {
    commands: mpsc::UnboundedSender<(Frame, oneshot::Sender<Result<(), ClientError>>)>,
    events: mpsc::UnboundedReceiver<Event>,
    task: JoinHandle<()>,
    timeout: Duration,
    headers: HeaderMap,
    protocol: Option<String>,
    closed: Option<Close>,
    ended: Option<ClientError>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("timeout", &self.timeout)
            .field("protocol", &self.protocol)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the connection task reports, in order.
enum Event {
    Message(Message),
    Close(Close),
    /// The connection is over without (more) close frames: `Ended` or `Connection`.
    Failed(ClientError),
}

impl Client {
    fn spawn(
        ws: WebSocketStream<TcpStream>,
        timeout: Duration,
        headers: HeaderMap,
        protocol: Option<String>,
    ) -> Client {
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (event_tx, events) = mpsc::unbounded_channel();
        let task = tokio::spawn(drive(ws, command_rx, event_tx));
        Client {
            commands,
            events,
            task,
            timeout,
            headers,
            protocol,
            closed: None,
            ended: None,
        }
    }

    /// The headers of the server's `101 Switching Protocols` reply (those added with
    /// [`Accept::header`](crate::Accept::header) and [`Accept::cookie`](crate::Accept::cookie)
    /// among them).
    pub fn response_headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The subprotocol the server chose, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// Changes how long each receive waits.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Sends a message and waits until it is written.
    ///
    /// # Errors
    ///
    /// [`ClientError::Closed`] once the server has closed the connection,
    /// [`ClientError::Ended`] or [`ClientError::Connection`] when it is gone,
    /// [`ClientError::Timeout`] when the write takes longer than the client's timeout.
    pub async fn send(&mut self, message: impl Into<Message>) -> Result<(), ClientError> {
        let frame = match message.into() {
            Message::Text(text) => Frame::text(text.as_str()),
            Message::Binary(bytes) => Frame::Binary(bytes),
        };
        self.command(frame).await
    }

    async fn command(&mut self, frame: Frame) -> Result<(), ClientError> {
        if let Some(close) = &self.closed {
            return Err(ClientError::Closed(close.clone()));
        }
        let (done, written) = oneshot::channel();
        if self.commands.send((frame, done)).is_err() {
            return Err(self.gone());
        }
        match tokio::time::timeout(self.timeout, written).await {
            Err(_) => Err(ClientError::Timeout(self.timeout)),
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(self.gone()),
        }
    }

    /// Why nothing more can be sent: the close seen, else how the connection ended.
    fn gone(&self) -> ClientError {
        match (&self.closed, &self.ended) {
            (Some(close), _) => ClientError::Closed(close.clone()),
            (None, Some(ClientError::Connection(err))) => {
                ClientError::Connection(err.to_string().into())
            }
            _ => ClientError::Ended,
        }
    }

    /// Sends a text message.
    ///
    /// # Errors
    ///
    /// As [`send`](Client::send).
    pub async fn send_text(&mut self, text: impl Into<Text>) -> Result<(), ClientError> {
        self.send(Message::Text(text.into())).await
    }

    /// Sends a binary message.
    ///
    /// # Errors
    ///
    /// As [`send`](Client::send).
    pub async fn send_binary(&mut self, bytes: impl Into<Bytes>) -> Result<(), ClientError> {
        self.send(Message::Binary(bytes.into())).await
    }

    /// Receives the next message, text or binary.
    ///
    /// # Errors
    ///
    /// [`ClientError::Timeout`] when nothing arrives in time, [`ClientError::Closed`] with the
    /// server's code and reason when it closed instead, [`ClientError::Ended`] or
    /// [`ClientError::Connection`] when the connection failed.
    pub async fn recv(&mut self) -> Result<Message, ClientError> {
        match self.next_event(self.timeout).await? {
            Event::Message(message) => Ok(message),
            Event::Close(close) => Err(ClientError::Closed(close)),
            Event::Failed(err) => Err(err),
        }
    }

    /// Receives the next message, which must be text.
    ///
    /// # Errors
    ///
    /// [`ClientError::Unexpected`] for a binary message; otherwise as [`recv`](Client::recv).
    pub async fn recv_text(&mut self) -> Result<String, ClientError> {
        match self.recv().await? {
            Message::Text(text) => Ok(text.into()),
            other @ Message::Binary(_) => Err(ClientError::Unexpected(other)),
        }
    }

    /// Receives the next message, which must be binary.
    ///
    /// # Errors
    ///
    /// [`ClientError::Unexpected`] for a text message; otherwise as [`recv`](Client::recv).
    pub async fn recv_binary(&mut self) -> Result<Bytes, ClientError> {
        match self.recv().await? {
            Message::Binary(bytes) => Ok(bytes),
            other @ Message::Text(_) => Err(ClientError::Unexpected(other)),
        }
    }

    /// Waits `quiet` and succeeds if no message arrived meanwhile.
    ///
    /// # Errors
    ///
    /// [`ClientError::Unexpected`] with the message that arrived, [`ClientError::Closed`] if
    /// the server closed, [`ClientError::Ended`] or [`ClientError::Connection`] on failure.
    pub async fn expect_no_message(&mut self, quiet: Duration) -> Result<(), ClientError> {
        match self.next_event(quiet).await {
            Err(ClientError::Timeout(_)) => Ok(()),
            Err(err) | Ok(Event::Failed(err)) => Err(err),
            Ok(Event::Message(message)) => Err(ClientError::Unexpected(message)),
            Ok(Event::Close(close)) => Err(ClientError::Closed(close)),
        }
    }

    /// Waits for the server to close the connection and returns its close code and reason
    /// (1005 for a close frame without a code). Messages that arrive first are skipped; use
    /// [`recv`](Client::recv) before to check them. The close has been answered by then.
    ///
    /// ```
    /// # async fn demo(mut client: ws::test::Client) -> Result<(), ws::test::ClientError> {
    /// let close = client.expect_close().await?;
    /// assert_eq!(close.code, ws::Close::INVALID_DATA);
    /// assert!(close.reason.starts_with("Invalid JSON"));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`ClientError::Timeout`] when no close arrives within the client's timeout,
    /// [`ClientError::Ended`] when the connection ends without a close frame,
    /// [`ClientError::Connection`] when it fails.
    pub async fn expect_close(&mut self) -> Result<Close, ClientError> {
        if let Some(close) = &self.closed {
            return Ok(close.clone());
        }
        let deadline = Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event(left).await {
                Ok(Event::Close(close)) => return Ok(close),
                Ok(Event::Message(_)) => {}
                Err(ClientError::Timeout(_)) => return Err(ClientError::Timeout(self.timeout)),
                Ok(Event::Failed(err)) | Err(err) => return Err(err),
            }
        }
    }

    /// Closes the connection with this code and reason and waits for the server's answer,
    /// which it returns (normally the same code). Messages that arrive first are skipped.
    ///
    /// # Errors
    ///
    /// [`ClientError::Closed`] if the server had already closed the connection; otherwise as
    /// [`expect_close`](Client::expect_close).
    pub async fn close(&mut self, code: u16, reason: &str) -> Result<Close, ClientError> {
        let frame = Frame::Close(Some(CloseFrame {
            code: code.into(),
            reason: reason.into(),
        }));
        self.command(frame).await?;
        self.expect_close().await
    }

    /// The next event within `wait`; after the close or the end, the same answer again.
    async fn next_event(&mut self, wait: Duration) -> Result<Event, ClientError> {
        if let Some(close) = &self.closed {
            return Err(ClientError::Closed(close.clone()));
        }
        if self.ended.is_some() {
            return Err(self.gone());
        }
        match tokio::time::timeout(wait, self.events.recv()).await {
            Err(_) => Err(ClientError::Timeout(wait)),
            Ok(None) => {
                self.ended = Some(ClientError::Ended);
                Err(ClientError::Ended)
            }
            Ok(Some(Event::Close(close))) => {
                self.closed = Some(close.clone());
                Ok(Event::Close(close))
            }
            Ok(Some(Event::Failed(err))) => {
                self.ended = Some(match &err {
                    ClientError::Connection(e) => ClientError::Connection(e.to_string().into()),
                    _ => ClientError::Ended,
                });
                Ok(Event::Failed(err))
            }
            Ok(Some(event @ Event::Message(_))) => Ok(event),
        }
    }
}

/// The client's connection task: writes what the test sends, reads everything (tungstenite
/// answers pings and the close), reports messages, the close and the end.
async fn drive(
    mut ws: WebSocketStream<TcpStream>,
    mut commands: mpsc::UnboundedReceiver<(Frame, oneshot::Sender<Result<(), ClientError>>)>,
    events: mpsc::UnboundedSender<Event>,
) {
    let mut closed = false;
    loop {
        tokio::select! {
            command = commands.recv() => {
                let Some((frame, done)) = command else { return };
                let result = ws.send(frame).await.map_err(connection_error);
                let _ = done.send(result);
            }
            next = ws.next() => {
                let event = match next {
                    None | Some(Err(tungstenite::Error::ConnectionClosed)) => {
                        if !closed {
                            let _ = events.send(Event::Failed(ClientError::Ended));
                        }
                        return;
                    }
                    Some(Err(err)) => {
                        if !closed {
                            let _ = events.send(Event::Failed(connection_error(err)));
                        }
                        return;
                    }
                    Some(Ok(Frame::Text(text))) => Event::Message(Message::text(text.as_str())),
                    Some(Ok(Frame::Binary(bytes))) => Event::Message(Message::Binary(bytes)),
                    Some(Ok(Frame::Close(frame))) => {
                        closed = true;
                        Event::Close(frame.map_or_else(
                            || Close::new(Close::NO_STATUS, ""),
                            |f| Close::new(f.code.into(), f.reason.as_str()),
                        ))
                    }
                    Some(Ok(Frame::Ping(_) | Frame::Pong(_) | Frame::Frame(_))) => continue,
                };
                let _ = events.send(event);
            }
        }
    }
}

fn connection_error(err: tungstenite::Error) -> ClientError {
    match err {
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            ClientError::Ended
        }
        other => ClientError::Connection(Box::new(other)),
    }
}

#[cfg(feature = "json")]
impl Client {
    /// Sends `value` serialized as JSON, in a text message (feature `json`).
    ///
    /// # Errors
    ///
    /// [`ClientError::Json`] if it cannot be serialized; otherwise as [`send`](Client::send).
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    pub async fn send_json<T: serde::Serialize + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<(), ClientError> {
        let text = serde_json::to_string(value).map_err(ClientError::Json)?;
        self.send_text(text).await
    }

    /// Receives the next message, text or binary, and decodes it from JSON (feature `json`).
    ///
    /// # Errors
    ///
    /// [`ClientError::Json`] if it is not JSON of this shape; otherwise as
    /// [`recv`](Client::recv).
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    pub async fn recv_json<T: serde::de::DeserializeOwned>(&mut self) -> Result<T, ClientError> {
        let message = self.recv().await?;
        serde_json::from_slice(message.as_bytes()).map_err(ClientError::Json)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A one-shot HTTP server on 127.0.0.1 that answers any request with `response`, then
    /// closes.
    async fn answer_with(response: &'static [u8]) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let mut byte = [0u8; 1];
                if stream.read(&mut byte).await.unwrap() == 0 {
                    return;
                }
                head.push(byte[0]);
            }
            assert!(head.starts_with(b"GET /x?y=1 HTTP/1.1\r\n"));
            for chunk in response.chunks(7) {
                stream.write_all(chunk).await.unwrap();
                stream.flush().await.unwrap();
            }
        });
        addr
    }

    fn connect(addr: SocketAddr) -> Connect {
        Connect {
            addr,
            path: "/x?y=1".into(),
            headers: Vec::new(),
            protocols: Vec::new(),
            timeout: Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn chunked_refusal_bodies_are_decoded() {
        let addr = answer_with(
            b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\r\n\
              5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n",
        )
        .await;
        let refusal = connect(addr).expect_refusal().await;
        assert_eq!(refusal.status(), 403);
        assert_eq!(refusal.body(), "hello world");
        assert_eq!(refusal.header("x-a"), Some("b"));
    }

    #[tokio::test]
    async fn bodies_without_length_are_read_to_the_end() {
        let addr = answer_with(b"HTTP/1.0 500 Oops\r\n\r\nall of it").await;
        let refusal = connect(addr).expect_refusal().await;
        assert_eq!(refusal.status(), 500);
        assert_eq!(refusal.body(), "all of it");
    }

    #[tokio::test]
    async fn a_101_with_a_wrong_accept_key_is_an_error() {
        let addr = answer_with(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: wrong\r\n\r\n",
        )
        .await;
        let err = connect(addr).await.unwrap_err();
        assert!(matches!(err, ConnectError::InvalidResponse(_)), "{err}");
    }

    #[tokio::test]
    async fn garbage_is_an_invalid_response() {
        let addr = answer_with(b"SSH-2.0-OpenSSH\r\n\r\n").await;
        let err = connect(addr).await.unwrap_err();
        assert!(matches!(err, ConnectError::InvalidResponse(_)), "{err}");
    }
}
