//! Per-socket configuration: limits, queues, timeouts, origins, subprotocols, with documented defaults.

use std::time::Duration;

/// Which browser origins may open a connection.
///
/// Browsers send an `Origin` header with every WebSocket handshake and do not apply the
/// same-origin policy to WebSocket connections, so without a check any page on the web can open a socket
/// with the user's cookies (cross-site WebSocket hijacking). Requests without `Origin`
/// (non-browser clients) are never refused by this check.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Origins {
    /// Default: the `Origin`'s host and port must equal the request's `Host` header.
    #[default]
    SameHost,
    /// Any of these origins, compared case-insensitively with the whole header
    /// (`"https://example.com"`, `"http://localhost:8080"`), or the same host as above.
    AllowList(Vec<String>),
    /// Any origin at all. Use it for public APIs that authenticate by other means.
    Any,
}

/// The configuration of one [`Socket`](crate::Socket).
///
/// Every setting has a production default; override what you need with the builder methods:
///
/// ```
/// use std::time::Duration;
/// use ws::{Config, Origins};
///
/// let config = Config::new()
///     .max_message_size(64 << 20)
///     .max_frame_size(16 << 20)
///     .close_timeout(Duration::from_secs(1))
///     .origins(Origins::Any)
///     .protocols(["chat.v2", "chat.v1"]);
/// assert_eq!(config.get_max_message_size(), 64 << 20);
/// ```
#[derive(Clone, Debug)]
pub struct Config {
    pub(crate) max_message_size: usize,
    pub(crate) max_frame_size: usize,
    pub(crate) read_buffer_size: usize,
    pub(crate) write_buffer_size: usize,
    pub(crate) send_queue: usize,
    pub(crate) close_timeout: Duration,
    pub(crate) heartbeat: Option<Duration>,
    pub(crate) heartbeat_misses: u32,
    pub(crate) origins: Origins,
    pub(crate) protocols: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_message_size: 10 << 20,
            max_frame_size: 1 << 20,
            read_buffer_size: 4 << 10,
            write_buffer_size: 64 << 10,
            send_queue: 1024,
            close_timeout: Duration::from_secs(3),
            heartbeat: Some(Duration::from_secs(10)),
            heartbeat_misses: 3,
            origins: Origins::SameHost,
            protocols: Vec::new(),
        }
    }
}

impl Config {
    /// The defaults, as listed on each setter.
    pub fn new() -> Self {
        Config::default()
    }

    /// Largest message accepted, after reassembly of its fragments. Default: 10 MiB.
    /// A larger message closes the connection with 1009.
    #[must_use]
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Largest single frame accepted. Default: 1 MiB. A larger frame closes the connection
    /// with 1009.
    #[must_use]
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame_size = bytes;
        self
    }

    /// Size of each connection's read buffer. Default: 4 KiB (tungstenite's own default
    /// reserves 128 KiB per connection; 4 KiB keeps an idle connection near 6 KiB and reads
    /// larger messages in more, equally correct, steps).
    #[must_use]
    pub fn read_buffer_size(mut self, bytes: usize) -> Self {
        self.read_buffer_size = bytes.max(256);
        self
    }

    /// How many bytes of outgoing frames are gathered before they are written to the socket.
    /// Default: 64 KiB. Frames are always flushed once the send queue is empty.
    #[must_use]
    pub fn write_buffer_size(mut self, bytes: usize) -> Self {
        self.write_buffer_size = bytes;
        self
    }

    /// Capacity, in messages, of each client's send queue. Default: 1024. When a send or a
    /// broadcast finds the queue full, the client is a slow consumer: it is closed with 1008
    /// and the send reports [`SendError::QueueFull`](crate::SendError::QueueFull), so one slow
    /// reader never grows the server's memory or delays the others.
    #[must_use]
    pub fn send_queue(mut self, messages: usize) -> Self {
        self.send_queue = messages.max(1);
        self
    }

    /// How long to wait for the peer's close frame after sending ours, before dropping the TCP
    /// connection. Default: 3 s.
    #[must_use]
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Heartbeat: when a whole interval passes without any input from the peer, a ping is
    /// sent; after [`heartbeat_misses`](Config::heartbeat_misses) pings in a row go
    /// unanswered, the client is closed with 1008 "Heartbeat timeout". Any input (a pong, a
    /// message, any frame) counts as an answer. While the server itself has paused reading
    /// because `on_data` is still busy with earlier messages, no ping is counted as missed, so
    /// a slow handler never closes a live client. Default: 10 s; `None` turns it off.
    #[must_use]
    pub fn heartbeat(mut self, interval: Option<Duration>) -> Self {
        self.heartbeat = interval.filter(|i| !i.is_zero());
        self
    }

    /// How many unanswered pings in a row close the client with 1008. Default: 3.
    #[must_use]
    pub fn heartbeat_misses(mut self, misses: u32) -> Self {
        self.heartbeat_misses = misses.max(1);
        self
    }

    /// Which browser origins are accepted. Default: [`Origins::SameHost`]; a refused origin
    /// gets `403 Forbidden`.
    #[must_use]
    pub fn origins(mut self, origins: Origins) -> Self {
        self.origins = origins;
        self
    }

    /// Subprotocols the server speaks, in order of preference. Default: none. When the client
    /// offers some and `on_handshake` did not choose one with
    /// [`Accept::protocol`](crate::Accept::protocol), the first of the client's offers that is
    /// in this list is chosen and echoed in `Sec-WebSocket-Protocol`. When nothing matches,
    /// the handshake still succeeds without a subprotocol, as RFC 6455 allows; browsers then
    /// fail the connection on their side if they required one.
    #[must_use]
    pub fn protocols<I, S>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.protocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// The maximum message size in bytes.
    pub fn get_max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// The maximum frame size in bytes.
    pub fn get_max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// The send queue capacity in messages.
    pub fn get_send_queue(&self) -> usize {
        self.send_queue
    }

    /// The close timeout.
    pub fn get_close_timeout(&self) -> Duration {
        self.close_timeout
    }

    /// The heartbeat interval, `None` when off.
    pub fn get_heartbeat(&self) -> Option<Duration> {
        self.heartbeat
    }

    /// The unanswered pings that close a client.
    pub fn get_heartbeat_misses(&self) -> u32 {
        self.heartbeat_misses
    }

    /// The origin policy.
    pub fn get_origins(&self) -> &Origins {
        &self.origins
    }

    /// The configured subprotocols.
    pub fn get_protocols(&self) -> &[String] {
        &self.protocols
    }

    pub(crate) fn tungstenite(&self) -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
        tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(self.read_buffer_size)
            .write_buffer_size(self.write_buffer_size)
            .max_message_size(Some(self.max_message_size))
            .max_frame_size(Some(self.max_frame_size))
    }
}
