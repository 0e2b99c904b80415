//! Per-socket configuration: limits, queues, timeouts, origins, subprotocols, with documented defaults.

use std::time::Duration;

use crate::cluster::Cluster;
use crate::history::History;
use crate::presence::Presence;
use crate::proto::deflate::Deflate;

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

/// What happens to a send that finds a client's send queue full (a slow consumer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SlowConsumer {
    /// Default: close that client with 1008 "Send queue full", ahead of what it has queued,
    /// and report the failed send ([`SendError::QueueFull`](crate::SendError::QueueFull)).
    #[default]
    Close,
    /// Drop the message for that client, report it, and keep the client.
    Drop,
    /// Make the sender wait: [`Endpoint::deliver_wait`](crate::Endpoint::deliver_wait) waits
    /// for room in the queue. The non-waiting sends cannot wait and behave as
    /// [`SlowConsumer::Drop`].
    Wait,
}

/// A per-client limit on how fast the server reads from that client.
///
/// When a client sends faster, the server simply reads more slowly (TCP backpressure); it
/// never closes the client for it. Bursts of up to one second's worth pass at once.
///
/// With permessage-deflate, the bytes of compressed messages count twice, on separate
/// clocks: as they come on the wire, and once inflated, each at `bytes_per_second`. A client
/// whose messages compress a thousandfold (64 KiB of one character is about 100 bytes on the
/// wire) gets its payload through no faster than one sending it plain, so the work it costs
/// the server (inflating, then compressing for each receiver) stays within the limit too.
/// The limit is checked between frames, also within one read: a read full of small or
/// highly compressed frames pauses as soon as the client is a second ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Bytes per second, frame headers included; also the rate of inflated payload bytes of
    /// compressed messages.
    pub bytes_per_second: u64,
    /// Frames per second, control frames included.
    pub frames_per_second: u64,
}

impl Default for RateLimit {
    /// 1 MiB/s and 100 frames/s.
    fn default() -> Self {
        RateLimit {
            bytes_per_second: 1 << 20,
            frames_per_second: 100,
        }
    }
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
    pub(crate) send_frame_size: usize,
    pub(crate) send_queue: usize,
    pub(crate) send_queue_bytes: usize,
    pub(crate) slow_consumer: SlowConsumer,
    pub(crate) text_only: bool,
    pub(crate) rate_limit: Option<RateLimit>,
    pub(crate) max_connections: Option<usize>,
    pub(crate) max_connections_per_ip: Option<usize>,
    pub(crate) close_timeout: Duration,
    pub(crate) heartbeat: Option<Duration>,
    pub(crate) heartbeat_misses: u32,
    pub(crate) origins: Origins,
    pub(crate) protocols: Vec<String>,
    pub(crate) deflate: Option<Deflate>,
    pub(crate) cluster: Cluster,
    pub(crate) history: Option<History>,
    pub(crate) presence: Option<Presence>,
    pub(crate) name: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_message_size: 10 << 20,
            max_frame_size: 1 << 20,
            read_buffer_size: 4 << 10,
            write_buffer_size: 256 << 10,
            send_frame_size: 64 << 10,
            send_queue: 1024,
            send_queue_bytes: 4 << 20,
            slow_consumer: SlowConsumer::Close,
            text_only: false,
            rate_limit: Some(RateLimit::default()),
            max_connections: Some(10_000),
            max_connections_per_ip: Some(256),
            close_timeout: Duration::from_secs(3),
            heartbeat: Some(Duration::from_secs(10)),
            heartbeat_misses: 3,
            origins: Origins::SameHost,
            protocols: Vec::new(),
            deflate: None,
            cluster: Cluster::standalone(),
            history: None,
            presence: None,
            name: None,
        }
    }
}

impl Config {
    /// Slots a connection's emptied queues keep: enough for a burst when the heartbeat (whose
    /// every tick gives them back once empty) bounds how long, the queue's default otherwise.
    pub(crate) fn queue_keep(&self) -> usize {
        if self.heartbeat.is_some() {
            1024
        } else {
            crate::rt::queue::KEEP
        }
    }

    /// The defaults, as listed on each setter.
    pub fn new() -> Self {
        Config::default()
    }

    /// The socket's name in its figures: the `socket` label of every metric (feature
    /// `metrics`) and [`SocketStats::socket`](crate::SocketStats::socket). Default: the
    /// handler type's name (`Chat` for `impl Chat`). Give two sockets of one type different
    /// names to tell them apart; keep names few (a label's values must be).
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The name set with [`name`](Config::name), if any.
    pub fn get_name(&self) -> Option<&str> {
        self.name.as_deref()
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

    /// Size of each connection's read buffer. Default: 4 KiB. While reads keep filling it,
    /// the read size doubles up to 128 KiB (a burst is read in few system calls); a frame
    /// larger than the buffer grows it to fit (up to the frame limit), and payloads over 8 KiB
    /// are taken from it without a copy. On plain TCP a connection with nothing to read holds
    /// no read buffer: a small one is given back as soon as a read would wait, a grown one
    /// after a heartbeat period without input. So idle connections stay small (tungstenite's
    /// default reserves 128 KiB per connection; see `BENCHMARKS.md` for the measured memory
    /// per idle connection).
    #[must_use]
    pub fn read_buffer_size(mut self, bytes: usize) -> Self {
        self.read_buffer_size = bytes.max(256);
        self
    }

    /// How many bytes of outgoing frames are gathered for one write before more are gathered.
    /// Headers and payloads up to 2 KiB are copied into one buffer, larger payloads are
    /// written by reference (`writev`, no copy). Default: 256 KiB, so that a few large
    /// messages go out in one system call (at 64 KiB, each 64 KiB message was a write of its
    /// own). What is gathered is always written once the send queue is empty.
    #[must_use]
    pub fn write_buffer_size(mut self, bytes: usize) -> Self {
        self.write_buffer_size = bytes;
        self
    }

    /// Largest frame the server sends. Default: 64 KiB. A longer message (after compression,
    /// with permessage-deflate) goes out as a fragmented message of frames this size, and
    /// between two of its frames the connection answers pings and sends an urgent close (a
    /// slow consumer, a shutdown past its wait), so neither waits behind a large message.
    /// At least 1 KiB.
    #[must_use]
    pub fn send_frame_size(mut self, bytes: usize) -> Self {
        self.send_frame_size = bytes.max(1024);
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

    /// Capacity, in bytes of payload, of each client's send queue (messages the writer has not
    /// taken yet). Default: 4 MiB. A message larger than this is still queued when the queue is
    /// otherwise empty. A send that finds
    /// the queue full applies the [`slow_consumer`](Config::slow_consumer) policy.
    #[must_use]
    pub fn send_queue_bytes(mut self, bytes: usize) -> Self {
        self.send_queue_bytes = bytes.max(1);
        self
    }

    /// What a send does when a client's queue is full. Default: [`SlowConsumer::Close`].
    #[must_use]
    pub fn slow_consumer(mut self, policy: SlowConsumer) -> Self {
        self.slow_consumer = policy;
        self
    }

    /// Accept text messages only. Default: off. When on, a binary message closes the client
    /// with 1003 "Binary messages are not accepted".
    #[must_use]
    pub fn text_only(mut self, text_only: bool) -> Self {
        self.text_only = text_only;
        self
    }

    /// How fast the server reads from each client. Default: 1 MiB/s and 100 frames/s
    /// ([`RateLimit::default`]); `None` reads as fast as the client sends. A faster client is
    /// slowed down (reading pauses), never closed, and the heartbeat counts no miss while
    /// reading is paused.
    #[must_use]
    pub fn rate_limit(mut self, limit: Option<RateLimit>) -> Self {
        self.rate_limit = limit.map(|l| RateLimit {
            bytes_per_second: l.bytes_per_second.max(1),
            frames_per_second: l.frames_per_second.max(1),
        });
        self
    }

    /// Most connections the socket holds at once. Default: 10,000; `None` for no limit. A
    /// handshake beyond it gets `503 Service Unavailable` with `Retry-After`, before the
    /// upgrade and before `on_handshake`.
    #[must_use]
    pub fn max_connections(mut self, max: Option<usize>) -> Self {
        self.max_connections = max;
        self
    }

    /// Most connections one client IP address holds at once. Default: 256; `None` for no
    /// limit. A handshake beyond it gets `429 Too Many Requests` with `Retry-After`, before the
    /// upgrade and before `on_handshake`.
    #[must_use]
    pub fn max_connections_per_ip(mut self, max: Option<usize>) -> Self {
        self.max_connections_per_ip = max;
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
    /// a slow handler never closes a live client. Each interval also gives back the memory a
    /// connection's queues kept after a burst (up to 1,024 slots each, so that back-to-back
    /// bursts do not allocate it again; without a heartbeat they keep 16). Default: 10 s; `None`
    /// turns it off.
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

    /// permessage-deflate (RFC 7692). Default: `None` (off: offers are declined, and a
    /// compressed frame closes the client with 1002). With [`Deflate`] settings, the first
    /// acceptable offer of each client is accepted; see [`Deflate`] for the size threshold
    /// and the memory-versus-ratio trade-offs (context takeover, window bits). Inflated sizes
    /// count against [`max_message_size`](Config::max_message_size).
    #[must_use]
    pub fn deflate(mut self, deflate: Option<Deflate>) -> Self {
        self.deflate = deflate;
        self
    }

    /// The cluster this socket is a node of: [`Cluster::standalone`] (the default: one node,
    /// nothing leaves the process), [`Cluster::in_process`] (nodes in one process), or a
    /// backplane such as Redis ([`Cluster::with_backplane`]). Every [`Endpoint`](crate::Endpoint)
    /// operation then reaches the clients of every node; see the crate guide's "Clusters".
    #[must_use]
    pub fn cluster(mut self, cluster: Cluster) -> Self {
        self.cluster = cluster;
        self
    }

    /// The cluster this socket is a node of.
    pub fn get_cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Which rooms keep a history of their messages, so that a client that comes back gets
    /// what it missed ([`Endpoint::join_since`](crate::Endpoint::join_since)); `None` (the
    /// default) keeps none. See [`History`].
    ///
    /// On one node the history is kept in memory. In a cluster ([`Config::cluster`]) it is
    /// kept by the backplane's store (the [`Hub`](crate::cluster::Hub) and Redis have one),
    /// so that every node agrees on each room's offsets; a backplane without a store keeps
    /// none (logged when the socket is made). Every node of a cluster should be given the
    /// same settings.
    #[must_use]
    pub fn history(mut self, history: Option<History>) -> Self {
        self.history = history;
        self
    }

    /// Which rooms track their members across the cluster, for
    /// [`Endpoint::presence`](crate::Endpoint::presence) and join/leave events; `None` (the
    /// default) tracks none. See [`Presence`]. In a cluster, the backplane's store keeps a
    /// copy of each node's members (the [`Hub`](crate::cluster::Hub) and Redis have one); a
    /// backplane without a store tracks none (logged when the socket is made).
    #[must_use]
    pub fn presence(mut self, presence: Option<Presence>) -> Self {
        self.presence = presence;
        self
    }

    /// The presence settings, `None` when no room tracks its members.
    pub fn get_presence(&self) -> Option<&Presence> {
        self.presence.as_ref()
    }

    /// The history settings, `None` when no room keeps history.
    pub fn get_history(&self) -> Option<&History> {
        self.history.as_ref()
    }

    /// The permessage-deflate settings, `None` when off.
    pub fn get_deflate(&self) -> Option<&Deflate> {
        self.deflate.as_ref()
    }

    /// The maximum message size in bytes.
    pub fn get_max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// The maximum frame size in bytes.
    pub fn get_max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// The largest frame the server sends.
    pub fn get_send_frame_size(&self) -> usize {
        self.send_frame_size
    }

    /// The send queue capacity in bytes.
    pub fn get_send_queue_bytes(&self) -> usize {
        self.send_queue_bytes
    }

    /// The slow-consumer policy.
    pub fn get_slow_consumer(&self) -> SlowConsumer {
        self.slow_consumer
    }

    /// Whether binary messages are refused.
    pub fn get_text_only(&self) -> bool {
        self.text_only
    }

    /// The per-client read rate limit.
    pub fn get_rate_limit(&self) -> Option<RateLimit> {
        self.rate_limit
    }

    /// The connection limit.
    pub fn get_max_connections(&self) -> Option<usize> {
        self.max_connections
    }

    /// The per-IP connection limit.
    pub fn get_max_connections_per_ip(&self) -> Option<usize> {
        self.max_connections_per_ip
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
}
