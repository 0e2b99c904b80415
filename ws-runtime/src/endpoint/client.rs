//! One open client as its connection and every `Endpoint` clone share it: its id, counters,
//! bounded send queue, and the close it was asked for; and the write of a delivery from the
//! publisher, when the connection's writer is idle.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tokio::net::TcpStream;

use super::{ClientInfo, SendError};
use crate::cluster::{ClientId, User};
use crate::config::SlowConsumer;
use crate::message::Close;
use crate::metrics::{Meter, Traffic};
use crate::proto::OutFrame;
use crate::rt::lend::Lend;
use crate::rt::queue::{PushError, Queue, Weighted};
use crate::rt::signal::Signal;

/// Payloads up to this size are written by the publisher when the receiver's writer is idle
/// ([`Client::push_direct`]). Up to this size, a delivery costs the path to the receiver's
/// writer (a wake, a poll of its task, a lock of its queue) more than its write; past it,
/// the copy into the socket dominates, and it is better done on the receiver's worker thread
/// than one after another on the publisher's.
pub(super) const DIRECT_MAX: usize = 2048;

/// What the connection's writer is asked to do, in queue order.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A frame; its payload's size counts against the queue's byte limit. Or the rest of a
    /// frame the publisher wrote in part ([`OutFrame::rest`], see [`Client::push_direct`]),
    /// which nothing may come before. (Not a variant of its own: a third would make every
    /// queued item 8 bytes larger.)
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

/// A plain TCP connection's socket, which its writer lends the send queue while the
/// connection is open without compression: a delivery is written through it by the
/// publisher while the writer is idle ([`Client::push_direct`]).
#[derive(Debug)]
pub(crate) struct Direct {
    socket: Arc<TcpStream>,
    /// The largest payload written this way: [`DIRECT_MAX`], or less when the socket's send
    /// frame size is smaller (the writer fragments larger payloads).
    max: usize,
}

impl Direct {
    /// The socket, for payloads that the writer sends as one frame of at most
    /// `send_frame_size` bytes.
    pub(crate) fn new(socket: Arc<TcpStream>, send_frame_size: usize) -> Self {
        Direct {
            socket,
            max: DIRECT_MAX.min(send_frame_size),
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

/// What the handshake settled about a connection besides its address: the subprotocol and the
/// user. Boxed and absent for most connections, so it costs the connection's task one word.
#[derive(Debug, Default)]
pub(crate) struct Identity {
    pub(crate) protocol: Option<String>,
    pub(crate) user: Option<User>,
}

impl Identity {
    /// `None` when there is nothing to say.
    pub(crate) fn boxed(protocol: Option<String>, user: Option<User>) -> Option<Box<Identity>> {
        (protocol.is_some() || user.is_some()).then(|| Box::new(Identity { protocol, user }))
    }
}

/// State shared between a client's connection task and every `Endpoint` clone.
#[derive(Debug)]
pub(crate) struct Client {
    pub(crate) id: ClientId,
    remote_addr: SocketAddr,
    identity: Option<Box<Identity>>,
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
    /// What the writer will send, and, lent by the writer, the socket a delivery may be
    /// written through from the publisher.
    pub(crate) queue: Queue<Outgoing, Direct>,
    /// Set while a hook of this client handles the last message its connection has read so
    /// far (or runs `on_open`): its deliveries to clients are written at once where their
    /// writers are idle ([`Client::push_direct`]). Earlier in a pass they are queued, so that
    /// a burst reaches each receiver in one write.
    handles_last: AtomicBool,
    /// When the heartbeat's last ping was sent and its pong not yet read: nanoseconds since
    /// `started`, plus one; zero when none is outstanding.
    ping_sent: AtomicU64,
    /// The socket's figures: a slow consumer and a ping's round trip are counted there.
    pub(crate) meter: Arc<Meter>,
}

impl Client {
    /// A client just opened, with an empty send queue of these bounds.
    pub(crate) fn new(
        id: ClientId,
        remote_addr: SocketAddr,
        identity: Option<Box<Identity>>,
        policy: SlowConsumer,
        queue: Queue<Outgoing, Direct>,
        meter: Arc<Meter>,
    ) -> Self {
        Client {
            id,
            remote_addr,
            identity,
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
            handles_last: AtomicBool::new(false),
            ping_sent: AtomicU64::new(0),
            meter,
        }
    }

    /// What this client counted, for the socket's figures.
    pub(crate) fn traffic(&self) -> Traffic {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Traffic {
            messages_received: load(&self.stats.messages_read),
            messages_sent: load(&self.stats.messages_sent),
            received_bytes: load(&self.stats.bytes_read),
            sent_bytes: load(&self.stats.bytes_sent),
        }
    }

    /// The heartbeat sends a ping now.
    pub(crate) fn ping_sent(&self) {
        let since = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
        self.ping_sent.store(since + 1, Ordering::Relaxed);
    }

    /// A pong was read: the round trip of the ping it answers, if one is outstanding, is
    /// counted. (A pong is not matched to its ping by payload: a peer that sends pongs of its
    /// own only shortens its own figures.)
    pub(crate) fn pong_read(&self) {
        let sent = self.ping_sent.swap(0, Ordering::Relaxed);
        if sent == 0 {
            return;
        }
        let now = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.meter.ping_rtt(std::time::Duration::from_nanos(
            now.saturating_sub(sent - 1),
        ));
    }

    /// The user `on_handshake` said this client is.
    pub(crate) fn user(&self) -> Option<&User> {
        self.identity.as_ref()?.user.as_ref()
    }

    /// A snapshot of the connection and its counters.
    pub(crate) fn info(&self) -> ClientInfo {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let stats = &self.stats;
        ClientInfo {
            id: self.id,
            remote_addr: self.remote_addr,
            connected_at: self.connected_at,
            protocol: self
                .identity
                .as_ref()
                .and_then(|identity| identity.protocol.clone()),
            user: self.user().cloned(),
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
        self.stamp_at(slot, Instant::now());
    }

    fn stamp_at(&self, slot: &AtomicU64, now: Instant) {
        let since = now.saturating_duration_since(self.started);
        let nanos = u64::try_from(since.as_nanos()).unwrap_or(u64::MAX - 1);
        slot.store(nanos + 1, Ordering::Relaxed);
    }

    pub(crate) fn touch_read(&self) {
        self.stamp(&self.stats.last_read);
    }

    /// Counts what was written: messages, frames and bytes (a frame or message is counted
    /// once, when its first byte is written).
    pub(crate) fn wrote(&self, messages: u64, frames: u64, bytes: u64) {
        self.wrote_at(messages, frames, bytes, Instant::now());
    }

    /// [`wrote`](Client::wrote), the time of the write given: one reading of the clock for a
    /// whole broadcast (at 19,000 receivers, reading it per receiver was 2 % of the server's
    /// CPU).
    fn wrote_at(&self, messages: u64, frames: u64, bytes: u64, now: Instant) {
        let stats = &self.stats;
        stats.messages_sent.fetch_add(messages, Ordering::Relaxed);
        stats.frames_sent.fetch_add(frames, Ordering::Relaxed);
        stats.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
        self.meter.wrote(messages, bytes);
        self.stamp_at(&stats.last_sent, now);
    }

    /// Marks whether this client's hook now handles the last message read so far (see the
    /// field's comment).
    pub(crate) fn set_handles_last(&self, last: bool) {
        self.handles_last.store(last, Ordering::Relaxed);
    }

    pub(super) fn handles_last(&self) -> bool {
        self.handles_last.load(Ordering::Relaxed)
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
                self.meter.slow_close();
                self.close_urgently(Close::new(Close::POLICY_VIOLATION, "Send queue full"));
            }
            SlowConsumer::Drop | SlowConsumer::Wait => {
                tracing::debug!(client = %self.id, "send queue full; message dropped");
                self.meter.slow_drop();
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

    /// Writes a small frame from here, in one write, when the writer is idle (nothing queued,
    /// nothing in hand: see [`Queue::with_idle`]); queues it otherwise, as
    /// [`push`](Client::push). The rest of a partial write is queued for the writer, which
    /// writes it before anything else; a write the socket refuses (full, or failed) queues
    /// the whole frame. `now` is when the delivery began (the time of the client's last send).
    pub(super) fn push_direct(&self, frame: OutFrame, now: Instant) -> Result<(), SendError> {
        if self.is_closing() {
            return Err(SendError::Closing(self.id));
        }
        // Before the lock; the socket's own bound, which may be lower, under it.
        if frame.payload.len() > DIRECT_MAX {
            return self.push(frame);
        }
        let written = self.queue.with_idle(|direct| {
            if frame.payload.len() > direct.max {
                return (0, None);
            }
            write_now(&direct.socket, &frame)
        });
        match written {
            Some(written) if written > 0 => {
                self.wrote_at(1, 1, written as u64, now);
                Ok(())
            }
            _ => self.push(frame),
        }
    }

    /// The writer is about to write frames of its own (control frames, our close): no
    /// direct write until it [settles](Queue::settle). Gives the rest of a partial direct
    /// write, which must go out before them.
    pub(crate) fn hold_writes(&self) -> Option<OutFrame> {
        let rest = |next: &Outgoing| matches!(next, Outgoing::Message(frame) if frame.is_rest());
        match self.queue.hold(rest) {
            Some(Outgoing::Message(rest)) => Some(rest),
            _ => None,
        }
    }

    /// Queues a message of a room that keeps history: a full queue closes the client with
    /// 1008 whatever the policy, since a recorded message dropped for it would be a hole it
    /// could not see (closed, it comes back and recovers).
    pub(super) fn push_recorded(&self, frame: OutFrame) -> Result<(), SendError> {
        let pushed = self.push(frame);
        if matches!(pushed, Err(SendError::QueueFull(_))) && self.policy != SlowConsumer::Close {
            self.meter.slow_close();
            self.close_urgently(Close::new(Close::POLICY_VIOLATION, "Send queue full"));
        }
        pushed
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
    pub(crate) fn close(&self, close: Close) {
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

/// Writes a frame in one write, without waiting: the bytes written (0 for none: the socket is
/// full or failed, the writer meets the failure itself), and the rest to queue after a
/// partial write.
fn write_now(socket: &TcpStream, frame: &OutFrame) -> (usize, Option<Outgoing>) {
    // One plain write of a copy: for a small frame, `writev`'s setup of two buffers costs the
    // kernel more than the copy.
    let mut copy: Vec<u8> = Lend::take();
    copy.extend_from_slice(frame.frame_head().bytes());
    copy.extend_from_slice(&frame.payload);
    // Straight to the socket, not through tokio's `try_write`: its look at the socket's
    // readiness was a cache miss per receiver, a third of ours' own CPU at 19,000 receivers.
    // Readiness is the writer's, and it stays correct: a write refused here leaves it set,
    // so the writer's next try finds the socket full itself and waits for the kernel's word.
    let written = match socket2::SockRef::from(socket).send(&copy) {
        Ok(n) if n == copy.len() => (n, None),
        Ok(0) | Err(_) => (0, None),
        Ok(n) => {
            let rest = OutFrame::rest(Bytes::copy_from_slice(&copy[n..]));
            (n, Some(Outgoing::Message(rest)))
        }
    };
    Lend::give_back(&mut copy);
    written
}
