//! The `Endpoint`: the registry of open clients, their bounded send queues and counters, and
//! sending, broadcasting and closing from anywhere.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};

use crate::queue::{PushError, Queue, Weighted};
use crate::signal::Signal;

use crate::config::{Config, SlowConsumer};
use crate::frame::OutFrame;
use crate::message::{Close, Message};

/// Identifies one connection, unique for the lifetime of its [`Socket`](crate::Socket).
///
/// Ids start at 1 and are never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(u64);

impl ClientId {
    /// The id as a number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Why a send did not queue its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// No open client has this id (it never existed or has already closed).
    #[error("no open client with id {0}")]
    UnknownClient(ClientId),
    /// The client is closing; nothing more is sent to it.
    #[error("client {0} is closing")]
    Closing(ClientId),
    /// The client's send queue was full: it is a slow consumer. Under the default
    /// [`SlowConsumer::Close`] policy it is being closed with 1008; otherwise the message was
    /// dropped for it.
    #[error("send queue of client {0} is full")]
    QueueFull(ClientId),
    /// The close code cannot be sent in a close frame (see [`Close::is_sendable`]).
    #[error("close code {0} cannot be sent")]
    InvalidCloseCode(u16),
}

/// The outcome of a broadcast or multicast.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    /// How many clients had the message queued.
    pub queued: usize,
    /// Clients that did not get it: slow consumers (now closing with 1008), clients already
    /// closing, and, for a multicast, ids that are not open.
    pub failed: Vec<ClientId>,
}

/// A snapshot of one client's connection and counters, from [`Endpoint::info`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientInfo {
    /// The client's id.
    pub id: ClientId,
    /// The peer's address.
    pub remote_addr: SocketAddr,
    /// When the connection was opened.
    pub connected_at: SystemTime,
    /// The negotiated subprotocol, if any.
    pub protocol: Option<String>,
    /// Bytes read from the socket, frame headers included.
    pub bytes_read: u64,
    /// Frames read, control frames included.
    pub frames_read: u64,
    /// Complete data messages read.
    pub messages_read: u64,
    /// Bytes written to the socket, frame headers included.
    pub bytes_sent: u64,
    /// Frames written, control frames included.
    pub frames_sent: u64,
    /// Data messages written.
    pub messages_sent: u64,
    /// When data was last read, if ever.
    pub last_read: Option<SystemTime>,
    /// When data was last written, if ever.
    pub last_sent: Option<SystemTime>,
    /// Messages waiting in the send queue.
    pub queued: usize,
    /// Payload bytes waiting in the send queue.
    pub queued_bytes: usize,
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
    fn push(&self, frame: OutFrame) -> Result<(), SendError> {
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
    async fn push_wait(&self, frame: OutFrame) -> Result<(), SendError> {
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
    fn close(&self, close: Close) {
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

/// The client whose hooks this thread is running (see [`Endpoint::as_current`]), and the
/// registry it belongs to.
struct Current {
    registry: Arc<Registry>,
    client: Arc<Client>,
}

thread_local! {
    static CURRENT: RefCell<Option<Current>> = const { RefCell::new(None) };
}

/// Hashes a [`ClientId`] with one multiplication (Fibonacci hashing). Ids are handed out by
/// the server in sequence, never chosen by a peer, so the map needs no keyed hash; `SipHash`
/// was a visible cost of every `send` in profiles of a busy echo.
#[derive(Default)]
struct IdHasher(u64);

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

#[derive(Debug, Default)]
struct Clients {
    map: HashMap<ClientId, Arc<Client>, BuildHasherDefault<IdHasher>>,
    shutting_down: bool,
}

#[derive(Debug)]
pub(crate) struct Registry {
    clients: RwLock<Clients>,
    next_id: AtomicU64,
    queue_messages: usize,
    queue_bytes: u32,
    /// Slots an emptied send queue keeps (see [`burst_keep`](crate::queue::burst_keep)).
    queue_keep: usize,
    policy: SlowConsumer,
}

/// A cheap, cloneable handle to send to the clients of one [`Socket`](crate::Socket) from
/// anywhere: hooks, spawned tasks, other warp routes.
///
/// Every method is synchronous and never waits: messages go into each client's bounded send
/// queue and are written by that client's own task. Messages to one client are written in the
/// order they were queued, whether they came from [`send`](Endpoint::send) or from a
/// broadcast. A client whose queue is full is a slow consumer: it is closed with 1008 and the
/// send reports it, so one slow reader never grows the server's memory or delays the others.
///
/// ```
/// # async fn demo(endpoint: ws::Endpoint, id: ws::ClientId) {
/// endpoint.send(id, "just for you").ok();
/// let delivery = endpoint.broadcast("hello, everyone");
/// println!("{} clients got it; {:?} did not", delivery.queued, delivery.failed);
/// endpoint.broadcast_except("someone joined", [id]);
/// for id in endpoint.clients() {
///     if let Some(info) = endpoint.info(id) {
///         println!("{id} from {} sent {} messages", info.remote_addr, info.messages_read);
///     }
/// }
/// endpoint.close(id, 4000, "bye").ok();
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Endpoint {
    registry: Arc<Registry>,
}

impl Endpoint {
    pub(crate) fn new(config: &Config) -> Self {
        Endpoint {
            registry: Arc::new(Registry {
                clients: RwLock::default(),
                next_id: AtomicU64::new(0),
                queue_messages: config.send_queue.max(1),
                queue_bytes: u32::try_from(config.send_queue_bytes)
                    .unwrap_or(u32::MAX)
                    .max(1),
                queue_keep: crate::queue::burst_keep(config),
                policy: config.slow_consumer,
            }),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Clients> {
        self.registry
            .clients
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Clients> {
        self.registry
            .clients
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a new connection; `None` once shutdown has begun.
    pub(crate) fn register(
        &self,
        remote_addr: SocketAddr,
        protocol: Option<String>,
    ) -> Option<Arc<Client>> {
        let registry = &self.registry;
        let mut clients = self.write();
        if clients.shutting_down {
            return None;
        }
        let id = ClientId(self.registry.next_id.fetch_add(1, Ordering::Relaxed) + 1);
        let client = Arc::new(Client {
            id,
            remote_addr,
            protocol,
            connected_at: SystemTime::now(),
            started: Instant::now(),
            stats: Stats::default(),
            closing: AtomicBool::new(false),
            reader_paused: AtomicBool::new(false),
            throttled: AtomicBool::new(false),
            policy: registry.policy,
            urgent: Mutex::new(None),
            urgent_notify: Signal::default(),
            close_wanted: Signal::default(),
            idle: Signal::default(),
            queue: Queue::new(registry.queue_messages, registry.queue_bytes as usize)
                .keeping(registry.queue_keep),
        });
        clients.map.insert(id, client.clone());
        Some(client)
    }

    pub(crate) fn unregister(&self, id: ClientId) {
        self.write().map.remove(&id);
    }

    /// Refuses new clients and closes every open one with 1001, behind what is queued.
    pub(crate) fn begin_shutdown(&self) {
        let mut clients = self.write();
        clients.shutting_down = true;
        for client in clients.map.values() {
            client.close(Close::new(Close::GOING_AWAY, "Server shutting down"));
        }
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.read().shutting_down
    }

    /// Queues a message for one client.
    ///
    /// # Errors
    ///
    /// [`SendError::UnknownClient`] if no open client has this id, [`SendError::Closing`] if
    /// it is closing, [`SendError::QueueFull`] if its queue is full (it is then closed with
    /// 1008).
    pub fn send(&self, id: ClientId, message: impl Into<Message>) -> Result<(), SendError> {
        let mut frame = Some(OutFrame::message(message.into()));
        // The usual reply, from the client's own hooks: no lock, no lookup, one look at the
        // thread-local slot.
        let pushed = CURRENT.try_with(|current| {
            let current = current.borrow();
            let current = current.as_ref().filter(|current| {
                current.client.id == id && Arc::ptr_eq(&current.registry, &self.registry)
            })?;
            frame.take().map(|frame| current.client.push(frame))
        });
        if let Ok(Some(sent)) = pushed {
            return sent;
        }
        // Still here: it was not pushed above.
        let Some(frame) = frame else {
            return Err(SendError::UnknownClient(id));
        };
        let clients = self.read();
        let client = clients.map.get(&id).ok_or(SendError::UnknownClient(id))?;
        client.push(frame)
    }

    /// Runs `hooks` with `client` as this thread's current client during each of its polls,
    /// so that [`send`](Endpoint::send) to it from its own hooks finds it without the
    /// registry's lock (a read lock and a lookup were a tenth of the server's time echoing a
    /// burst of small messages). The client is moved in and out of the thread-local slot, not
    /// cloned, per poll; the slot's previous content is put back after each poll, even if the
    /// poll panics. The hooks' future is pinned by the caller: taken by value, it would be
    /// held twice in the connection's task.
    pub(crate) async fn as_current<F: Future>(
        &self,
        client: Arc<Client>,
        mut hooks: Pin<&mut F>,
    ) -> F::Output {
        /// Puts the previous current client back.
        struct Restore<'a> {
            ours: &'a mut Option<Current>,
            previous: Option<Current>,
        }
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                let previous = self.previous.take();
                if let Ok(ours) = CURRENT.try_with(|current| current.replace(previous)) {
                    *self.ours = ours;
                }
            }
        }
        let mut ours = Some(Current {
            registry: self.registry.clone(),
            client,
        });
        std::future::poll_fn(|cx| {
            let mut restore = Restore {
                previous: None,
                ours: &mut ours,
            };
            if let Ok(previous) = CURRENT.try_with(|current| current.replace(restore.ours.take())) {
                restore.previous = previous;
            }
            let poll: Poll<F::Output> = hooks.as_mut().poll(cx);
            drop(restore);
            poll
        })
        .await
    }

    /// Like [`send`](Endpoint::send), but under the [`SlowConsumer::Wait`] policy it waits for
    /// room in the client's queue instead of failing; it returns once the message is queued or
    /// the client is gone. Under the other policies it is the same as `send`.
    ///
    /// # Errors
    ///
    /// As [`send`](Endpoint::send).
    pub async fn send_wait(
        &self,
        id: ClientId,
        message: impl Into<Message>,
    ) -> Result<(), SendError> {
        let message = message.into();
        let client = {
            let clients = self.read();
            clients
                .map
                .get(&id)
                .ok_or(SendError::UnknownClient(id))?
                .clone()
        };
        client.push_wait(OutFrame::message(message)).await
    }

    /// Like [`broadcast`](Endpoint::broadcast), but under the [`SlowConsumer::Wait`] policy it
    /// waits for room in each client's queue in turn, so the slowest client paces the sender.
    /// Under the other policies it is the same as `broadcast`.
    pub async fn broadcast_wait(&self, message: impl Into<Message>) -> Delivery {
        let message = message.into();
        let frame = OutFrame::message(message);
        let targets: Vec<Arc<Client>> = self.read().map.values().cloned().collect();
        let mut delivery = Delivery::default();
        for client in targets {
            let id = client.id;
            match client.push_wait(frame.clone()).await {
                Ok(()) => delivery.queued += 1,
                Err(_) => delivery.failed.push(id),
            }
        }
        delivery
    }

    /// Queues a message for every open client. The payload is shared, not copied.
    pub fn broadcast(&self, message: impl Into<Message>) -> Delivery {
        self.deliver(message.into(), |_| true)
    }

    /// Queues a message for every open client except the given ones.
    pub fn broadcast_except(
        &self,
        message: impl Into<Message>,
        except: impl IntoIterator<Item = ClientId>,
    ) -> Delivery {
        let except: Vec<ClientId> = except.into_iter().collect();
        self.deliver(message.into(), |id| !except.contains(&id))
    }

    /// Queues a message for the given clients; ids that are not open are reported as failed.
    pub fn multicast(
        &self,
        message: impl Into<Message>,
        ids: impl IntoIterator<Item = ClientId>,
    ) -> Delivery {
        let message = message.into();
        let frame = OutFrame::message(message);
        let clients = self.read();
        let mut delivery = Delivery::default();
        let mut ids: Vec<ClientId> = ids.into_iter().collect();
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            match clients.map.get(&id) {
                Some(client) => match client.push(frame.clone()) {
                    Ok(()) => delivery.queued += 1,
                    Err(_) => delivery.failed.push(id),
                },
                None => delivery.failed.push(id),
            }
        }
        delivery
    }

    fn deliver(&self, message: Message, include: impl Fn(ClientId) -> bool) -> Delivery {
        let frame = OutFrame::message(message);
        let clients = self.read();
        let mut delivery = Delivery::default();
        for (id, client) in &clients.map {
            if !include(*id) {
                continue;
            }
            match client.push(frame.clone()) {
                Ok(()) => delivery.queued += 1,
                Err(_) => delivery.failed.push(*id),
            }
        }
        delivery
    }

    /// Closes a client with this code and reason, after the messages already queued for it.
    /// Its `on_close` then runs with this code.
    ///
    /// # Errors
    ///
    /// [`SendError::InvalidCloseCode`] for a code that cannot be sent (see
    /// [`Close::is_sendable`]), [`SendError::UnknownClient`] if no open client has this id.
    /// Closing a client that is already closing succeeds and changes nothing.
    pub fn close(&self, id: ClientId, code: u16, reason: &str) -> Result<(), SendError> {
        if !Close::is_sendable(code) {
            return Err(SendError::InvalidCloseCode(code));
        }
        let clients = self.read();
        let client = clients.map.get(&id).ok_or(SendError::UnknownClient(id))?;
        client.close(Close::new(code, truncate_reason(reason)));
        Ok(())
    }

    /// The ids of the open clients, in ascending order.
    pub fn clients(&self) -> Vec<ClientId> {
        let mut ids: Vec<ClientId> = self.read().map.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// How many clients are open.
    pub fn len(&self) -> usize {
        self.read().map.len()
    }

    /// Whether no client is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this client is open.
    pub fn contains(&self, id: ClientId) -> bool {
        self.read().map.contains_key(&id)
    }

    /// The connection details and counters of an open client.
    pub fn info(&self, id: ClientId) -> Option<ClientInfo> {
        let clients = self.read();
        let c = clients.map.get(&id)?;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Some(ClientInfo {
            id,
            remote_addr: c.remote_addr,
            connected_at: c.connected_at,
            protocol: c.protocol.clone(),
            bytes_read: load(&c.stats.bytes_read),
            frames_read: load(&c.stats.frames_read),
            messages_read: load(&c.stats.messages_read),
            bytes_sent: load(&c.stats.bytes_sent),
            frames_sent: load(&c.stats.frames_sent),
            messages_sent: load(&c.stats.messages_sent),
            last_read: c.time_of(&c.stats.last_read),
            last_sent: c.time_of(&c.stats.last_sent),
            queued: c.queue.len(),
            queued_bytes: c.queue.weight(),
        })
    }
}

/// A close reason is at most 123 bytes (125 minus the code); cut at a character boundary.
pub(crate) fn truncate_reason(reason: &str) -> &str {
    if reason.len() <= 123 {
        return reason;
    }
    let mut end = 123;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_is_truncated_on_a_char_boundary() {
        let long = "é".repeat(100);
        let cut = truncate_reason(&long);
        assert!(cut.len() <= 123);
        assert_eq!(cut.len() % 2, 0);
        assert_eq!(truncate_reason("short"), "short");
    }

    #[test]
    fn registry_queues_and_refuses() {
        let endpoint = Endpoint::new(&Config::new().send_queue(2));
        let addr = SocketAddr::from(([127, 0, 0, 1], 1));
        let a = endpoint.register(addr, None).unwrap();
        let b = endpoint.register(addr, None).unwrap();
        assert_eq!(endpoint.clients(), vec![a.id, b.id]);
        assert_eq!(endpoint.broadcast("x").queued, 2);
        assert!(matches!(a.queue.try_pop(), Some(Outgoing::Message(f)) if f.payload.len() == 1));
        endpoint.send(b.id, "y").unwrap();
        assert_eq!(endpoint.send(b.id, "z"), Err(SendError::QueueFull(b.id)));
        assert!(b.is_closing());
        assert_eq!(b.take_urgent().map(|c| c.code), Some(1008));
        assert_eq!(endpoint.send(b.id, "z"), Err(SendError::Closing(b.id)));
        let delivery = endpoint.multicast("m", [a.id, ClientId(99)]);
        assert_eq!(delivery.queued, 1);
        assert_eq!(delivery.failed, vec![ClientId(99)]);
        assert_eq!(
            endpoint.close(a.id, 1005, ""),
            Err(SendError::InvalidCloseCode(1005))
        );
        endpoint.begin_shutdown();
        assert!(endpoint.register(addr, None).is_none());
        endpoint.unregister(a.id);
        assert_eq!(endpoint.len(), 1);
    }
}
