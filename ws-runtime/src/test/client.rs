//! The test client: the handshake being prepared ([`Connect`]), a refused one ([`Refusal`]),
//! the connection ([`Client`]) and their errors.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
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

use crate::{Close, Message, Text};

use super::errors::{ClientError, ConnectError, Refusal};
use super::raw;
#[cfg(doc)]
use super::{DEFAULT_TIMEOUT, TestServer};

/// A WebSocket handshake being prepared by [`TestServer::connect`]; `.await` it for the
/// [`Client`], or call [`expect_refusal`](Connect::expect_refusal).
#[cfg_attr(docsrs, doc(cfg(feature = "test")))]
#[derive(Debug, Clone)]
#[must_use = "a handshake is sent only when awaited"]
pub struct Connect {
    pub(super) addr: SocketAddr,
    pub(super) path: String,
    pub(super) headers: Vec<(String, String)>,
    pub(super) protocols: Vec<String>,
    pub(super) timeout: Duration,
}

impl Connect {
    /// A handshake for `path_and_query` on the server at `addr`, with the default timeout.
    pub(super) fn new(addr: SocketAddr, path_and_query: &str) -> Self {
        Connect {
            addr,
            path: path_and_query.to_owned(),
            headers: Vec::new(),
            protocols: Vec::new(),
            timeout: super::DEFAULT_TIMEOUT,
        }
    }

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
        raw::check_target(&self.path).map_err(ConnectError::InvalidRequest)?;
        let mut request = raw::Request::new(self.addr, &self.path)
            .header("sec-websocket-key", key)
            .timeout(self.timeout);
        if !self.protocols.is_empty() {
            request = request.header("sec-websocket-protocol", &self.protocols.join(", "));
        }
        Ok(request.headers(&self.headers))
    }

    async fn handshake(self) -> Result<Client, ConnectError> {
        let key = self
            .headers
            .iter()
            .rev()
            .find(|(name, _)| name.eq_ignore_ascii_case("sec-websocket-key"))
            .map_or_else(generate_key, |(_, key)| key.clone());
        let request = self.request(&key)?;
        let (reply, upgraded) = request.exchange().await.map_err(|err| {
            err.sort(
                ConnectError::Timeout,
                ConnectError::Io,
                ConnectError::InvalidRequest,
                ConnectError::InvalidResponse,
            )
        })?;
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

impl IntoFuture for Connect {
    type Output = Result<Client, ConnectError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
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
