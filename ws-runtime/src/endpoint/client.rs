//! One open client as its connection and every `Endpoint` clone share it: its id, counters,
//! bounded send queue, and the close it was asked for.

use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use super::{ClientInfo, SendError};
use crate::config::SlowConsumer;
use crate::message::Close;
use crate::proto::OutFrame;
use crate::rt::queue::{PushError, Queue, Weighted};
use crate::rt::signal::Signal;

/// A node: one process start of a server. Every [`ClientId`] carries the node that accepted
/// the connection, so ids are unique across every process of an application, and across
/// restarts (a restarted process is a new node).
///
/// Drawn at random when the process first needs it; shown as 8 hexadecimal digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(u32);

impl NodeId {
    /// This process's node.
    pub fn local() -> NodeId {
        static LOCAL: OnceLock<NodeId> = OnceLock::new();
        *LOCAL.get_or_init(|| {
            // `RandomState` is seeded from the OS once per process; the time and the pid
            // make two starts in one second of one image differ even if it were not.
            let nanos = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |since| since.as_nanos());
            let random = RandomState::new().hash_one((nanos, std::process::id()));
            #[allow(
                clippy::cast_possible_truncation,
                reason = "the high bits are as random"
            )]
            NodeId((random ^ (random >> 32)) as u32)
        })
    }

    /// The node as a number.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

impl FromStr for NodeId {
    type Err = ParseIdError;

    /// Parses what [`Display`](fmt::Display) shows: 8 hexadecimal digits.
    fn from_str(text: &str) -> Result<Self, ParseIdError> {
        if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ParseIdError(()));
        }
        u32::from_str_radix(text, 16)
            .map(NodeId)
            .map_err(|_| ParseIdError(()))
    }
}

/// Identifies one connection across every node of an application: the [`NodeId`] of the
/// process that accepted it, and its number there (from 1, never reused by that node).
///
/// Shown as `NODE-NUMBER`, e.g. `5f3a91c2-42`, and parsed back from that text, so an id can
/// travel in a message or a URL and come back as the same client:
///
/// ```
/// # fn demo(id: ws::ClientId) {
/// let text = id.to_string();
/// assert_eq!(text.parse::<ws::ClientId>(), Ok(id));
/// assert!(id.is_local(), "accepted by this process");
/// # }
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ClientId {
    node: NodeId,
    number: u64,
}

impl ClientId {
    /// The `number`th id of `node`.
    pub(crate) fn new(node: NodeId, number: u64) -> Self {
        ClientId { node, number }
    }

    /// The node that accepted this client.
    pub fn node(self) -> NodeId {
        self.node
    }

    /// Its number on its node: 1 for the node's first client, and so on.
    pub fn number(self) -> u64 {
        self.number
    }

    /// Whether this process accepted this client.
    pub fn is_local(self) -> bool {
        self.node == NodeId::local()
    }
}

// One word of hash input: the number, with the node in its high bits, so that the registry's
// map stays a one-multiplication hash (`IdHasher`).
impl Hash for ClientId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.number ^ (u64::from(self.node.0) << 32));
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.node, self.number)
    }
}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientId({self})")
    }
}

impl FromStr for ClientId {
    type Err = ParseIdError;

    /// Parses what [`Display`](fmt::Display) shows: `NODE-NUMBER`.
    fn from_str(text: &str) -> Result<Self, ParseIdError> {
        let (node, number) = text.split_once('-').ok_or(ParseIdError(()))?;
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseIdError(()));
        }
        let number = number.parse().map_err(|_| ParseIdError(()))?;
        Ok(ClientId::new(node.parse()?, number))
    }
}

/// Text that is not a [`ClientId`] (`NODE-NUMBER`) or a [`NodeId`] (8 hexadecimal digits).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a client id: expected 8 hexadecimal digits, `-` and a number, like `5f3a91c2-42`")]
pub struct ParseIdError(());

/// Hashes a [`ClientId`] with one multiplication (Fibonacci hashing). The registry's keys are
/// handed out by the server in sequence, never chosen by a peer (a peer can at most name an id
/// to look up), so the map needs no keyed hash; `SipHash` was a visible cost of every `send` in
/// profiles of a busy echo.
#[derive(Default)]
pub(super) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// What the connection's writer is asked to do, in queue order.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A frame; its payload's size counts against the queue's byte limit.
    Message(OutFrame),
    Close(Close),
}

impl Weighted for Outgoing {
    fn weight(&self) -> usize {
        match self {
            Outgoing::Message(frame) => frame.payload.len(),
            Outgoing::Close(_) => 0,
        }
    }
}

/// Counters kept with atomics, updated by the connection's I/O.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) bytes_read: AtomicU64,
    pub(crate) frames_read: AtomicU64,
    pub(crate) messages_read: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) frames_sent: AtomicU64,
    pub(crate) messages_sent: AtomicU64,
    /// Nanoseconds since `started`, plus one; zero means never.
    last_read: AtomicU64,
    last_sent: AtomicU64,
}

/// State shared between a client's connection task and every `Endpoint` clone.
#[derive(Debug)]
pub(crate) struct Client {
    pub(crate) id: ClientId,
    remote_addr: SocketAddr,
    protocol: Option<String>,
    connected_at: SystemTime,
    started: Instant,
    pub(crate) stats: Stats,
    /// Set once a close is requested; later sends are refused.
    closing: AtomicBool,
    /// Set while the reader waits for `on_data` to take a message (our backpressure, not the
    /// peer's silence): the heartbeat counts no miss meanwhile.
    pub(crate) reader_paused: AtomicBool,
    /// Set while reading waits for the rate limit; the heartbeat counts no miss meanwhile.
    pub(crate) throttled: AtomicBool,
    policy: SlowConsumer,
    /// A close that must not wait behind the queue (queue full, protocol error, hook failure).
    urgent: Mutex<Option<Close>>,
    /// Wakes the writer: an urgent close, pongs owed, or the reader's end.
    pub(crate) urgent_notify: Signal,
    /// Wakes a writer stuck in a write: a close is wanted now.
    pub(crate) close_wanted: Signal,
    /// Tells the reader the connection has been idle for a heartbeat period: it gives back
    /// its read buffer.
    pub(crate) idle: Signal,
    /// What the writer will send.
    pub(crate) queue: Queue<Outgoing>,
}

impl Client {
    /// A client just opened, with an empty send queue of these bounds.
    pub(crate) fn new(
        id: ClientId,
        remote_addr: SocketAddr,
        protocol: Option<String>,
        policy: SlowConsumer,
        queue: Queue<Outgoing>,
    ) -> Self {
        Client {
            id,
            remote_addr,
            protocol,
            connected_at: SystemTime::now(),
            started: Instant::now(),
            stats: Stats::default(),
            closing: AtomicBool::new(false),
            reader_paused: AtomicBool::new(false),
            throttled: AtomicBool::new(false),
            policy,
            urgent: Mutex::new(None),
            urgent_notify: Signal::default(),
            close_wanted: Signal::default(),
            idle: Signal::default(),
            queue,
        }
    }

    /// A snapshot of the connection and its counters.
    pub(crate) fn info(&self) -> ClientInfo {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let stats = &self.stats;
        ClientInfo {
            id: self.id,
            remote_addr: self.remote_addr,
            connected_at: self.connected_at,
            protocol: self.protocol.clone(),
            bytes_read: load(&stats.bytes_read),
            frames_read: load(&stats.frames_read),
            messages_read: load(&stats.messages_read),
            bytes_sent: load(&stats.bytes_sent),
            frames_sent: load(&stats.frames_sent),
            messages_sent: load(&stats.messages_sent),
            last_read: self.time_of(&stats.last_read),
            last_sent: self.time_of(&stats.last_sent),
            queued: self.queue.len(),
            queued_bytes: self.queue.weight(),
        }
    }

    fn stamp(&self, slot: &AtomicU64) {
        let nanos = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
        slot.store(nanos + 1, Ordering::Relaxed);
    }

    pub(crate) fn touch_read(&self) {
        self.stamp(&self.stats.last_read);
    }

    pub(crate) fn touch_sent(&self) {
        self.stamp(&self.stats.last_sent);
    }

    /// An opaque stamp of the last input; changes whenever bytes are read.
    pub(crate) fn input_stamp(&self) -> u64 {
        self.stats.last_read.load(Ordering::Relaxed)
    }

    fn time_of(&self, slot: &AtomicU64) -> Option<SystemTime> {
        match slot.load(Ordering::Relaxed) {
            0 => None,
            n => Some(self.connected_at + Duration::from_nanos(n - 1)),
        }
    }

    /// Asks the writer to send this close ahead of anything queued. The first close wins.
    pub(crate) fn close_urgently(&self, close: Close) {
        self.closing.store(true, Ordering::Release);
        let mut slot = self
            .urgent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(close);
            drop(slot);
            self.urgent_notify.notify();
            self.close_wanted.notify();
        }
    }

    pub(crate) fn take_urgent(&self) -> Option<Close> {
        self.urgent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Whether reading is held back by the server itself (a busy `on_data`, the rate limit),
    /// so that the peer's silence proves nothing.
    pub(crate) fn reading_held_back(&self) -> bool {
        self.reader_paused.load(Ordering::Relaxed) || self.throttled.load(Ordering::Relaxed)
    }

    /// A send found the queue full: apply the slow-consumer policy.
    fn queue_full(&self) -> SendError {
        match self.policy {
            SlowConsumer::Close => {
                tracing::warn!(client = %self.id, "send queue full; closing slow consumer with 1008");
                self.close_urgently(Close::new(Close::POLICY_VIOLATION, "Send queue full"));
            }
            SlowConsumer::Drop | SlowConsumer::Wait => {
                tracing::debug!(client = %self.id, "send queue full; message dropped");
            }
        }
        SendError::QueueFull(self.id)
    }
}

impl Client {
    /// Queues without waiting; a full queue makes the client a slow consumer.
    pub(super) fn push(&self, frame: OutFrame) -> Result<(), SendError> {
        if self.is_closing() {
            return Err(SendError::Closing(self.id));
        }
        match self.queue.try_push(Outgoing::Message(frame)) {
            Ok(()) => Ok(()),
            Err(PushError::Full(_)) => Err(self.queue_full()),
            Err(PushError::Closed(_)) => Err(SendError::Closing(self.id)),
        }
    }

    /// Queues, waiting for room under the [`SlowConsumer::Wait`] policy.
    pub(super) async fn push_wait(&self, frame: OutFrame) -> Result<(), SendError> {
        if self.policy != SlowConsumer::Wait {
            return self.push(frame);
        }
        if self.is_closing() {
            return Err(SendError::Closing(self.id));
        }
        // The queue is closed when the connection ends, which ends the wait.
        self.queue
            .push(Outgoing::Message(frame))
            .await
            .map_err(|_| SendError::Closing(self.id))
    }

    /// Closes after what is queued (at once when the queue is full).
    pub(super) fn close(&self, close: Close) {
        if self.closing.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Err(PushError::Full(Outgoing::Close(close))) =
            self.queue.try_push(Outgoing::Close(close))
        {
            self.close_urgently(close);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_display_and_parse_back() {
        let id = ClientId::new(NodeId(0x5f3a_91c2), 42);
        assert_eq!(id.to_string(), "5f3a91c2-42");
        assert_eq!("5f3a91c2-42".parse(), Ok(id));
        assert_eq!(format!("{id:?}"), "ClientId(5f3a91c2-42)");
        let low = ClientId::new(NodeId(1), 1);
        assert_eq!(low.to_string(), "00000001-1");
        assert_eq!(low.to_string().parse(), Ok(low));
        assert_eq!("5F3A91C2-42".parse(), Ok(id), "hex digits in either case");
        for bad in [
            "",
            "42",
            "5f3a91c2",
            "5f3a91c2-",
            "5f3a91c2-x",
            "5f3a91c-42",
            "5f3a91c2a-42",
            "5f3a91g2-42",
            "5f3a91c2--42",
            "5f3a91c2-+42",
            "5f3a91c2-18446744073709551616",
            " 5f3a91c2-42",
        ] {
            assert_eq!(bad.parse::<ClientId>(), Err(ParseIdError(())), "{bad:?}");
        }
    }

    #[test]
    fn the_local_node_is_one_per_process() {
        assert_eq!(NodeId::local(), NodeId::local());
        assert!(ClientId::new(NodeId::local(), 7).is_local());
        let other = NodeId(NodeId::local().get() ^ 1);
        assert!(!ClientId::new(other, 7).is_local());
        assert_eq!(other.to_string().parse(), Ok(other));
    }
}
