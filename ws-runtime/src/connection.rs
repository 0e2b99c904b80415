//! The connection task: reading, writing and handling run side by side per client; the close
//! handshake; the heartbeat; the rate limit; the one `on_close` per opened connection; and the
//! byte and frame counters. Frames are decoded and encoded by `frame`, and compressed and
//! inflated by `deflate` when permessage-deflate was negotiated.

use std::any::Any;
use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::Instant;
use tracing::Instrument;
use warp::hyper::upgrade::{OnUpgrade, Upgraded};

use crate::__private::DataParam;
use crate::config::{Config, RateLimit};
use crate::deflate::{Deflater, Inflater, Negotiated};
use crate::endpoint::{Client, Outgoing};
use crate::frame::{Decoder, Event, Limits, OutFrame};
use crate::gather::Gather;
use crate::handler::{DataError, Handler};
use crate::lend::{Lend, ReadMemory};
use crate::limits::Slot;
use crate::message::{Close, Message};
use crate::queue::{PushError, Queue, Weighted};
use crate::signal::Signal;
use crate::socket::SocketInner;
use crate::stream::{Feed, Incoming, MessageStream, Piece};

/// Messages read ahead of `on_data`: enough that a full read of small messages (64 KiB of
/// 64-byte messages) is handled and answered in one write; at 128, a pipelined burst took
/// four writes per read and 0.31 µs of server CPU per message against 0.28 at 1,024.
const INBOX: usize = 1024;

/// Bytes of messages read ahead of `on_data`. A message larger than this waits until the
/// handler has taken every earlier one, so a connection never holds more than this much read
/// ahead, besides the message being handled, up to `TAKE_BYTES` the handler has taken out to
/// handle next, and the messages decoded from one read that wait for room (at most the read
/// buffer's worth).
const INBOX_BYTES: usize = 256 << 10;

/// The read size grows to this while reads keep filling the buffer (a burst of small
/// messages is then read, handled and answered in few system calls), and falls back to
/// `Config::read_buffer_size` once the connection is idle.
const MAX_READ: usize = 128 << 10;

/// Whole messages the reader collects before handing them to the handler under one lock
/// (and the handler takes at once).
const HAND_OVER: usize = 64;

/// Bytes of messages the handler takes from its inbox at once (besides the first): they are
/// outside the inbox's limit while they wait their turn.
const TAKE_BYTES: usize = 64 << 10;

/// Queued messages the writer takes under one lock of the send queue.
const TAKE_AT_ONCE: usize = 64;

/// Bytes the reader moves to its buffer's front to make room for a full-size read.
const CHEAP_MOVE: usize = 8 << 10;

/// A read buffer grown past this for a large message is given back once it is empty.
const KEEP_READ_BUFFER: usize = 256 << 10;

/// Where the close handshake stands, shared by the reader and the writer of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    /// Our close frame went out at this instant; the reader waits for the reply until the
    /// close timeout.
    CloseSent(Instant),
    /// The reader has finished: the writer sends a pending close, if any, and stops.
    ReaderDone,
    /// The writer gave up on a peer that does not read: the reader stops too.
    Abort,
}

/// The phase, shared by the reader and the writer, with a wake-up for the reader (the writer
/// learns of the reader's end through the client's urgent signal). Lighter than a `watch`
/// channel, which allocated some hundred bytes of shared state per connection and kept a
/// waiter node in the reader's state while it waited.
#[derive(Debug)]
struct PhaseCell {
    phase: Mutex<Phase>,
    /// Whether the phase is still `Open`, readable without the lock (the reader looks before
    /// every read). A connection never goes back to `Open`.
    open: AtomicBool,
    /// Given on every change; only the reader waits for it.
    changed: Signal,
}

impl PhaseCell {
    fn new() -> Self {
        PhaseCell {
            phase: Mutex::new(Phase::Open),
            open: AtomicBool::new(true),
            changed: Signal::default(),
        }
    }

    fn get(&self) -> Phase {
        if self.open.load(Ordering::Acquire) {
            return Phase::Open;
        }
        *self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The phase, for the reader: a change made after this read wakes
    /// [`changed`](PhaseCell::changed) again, one made before does not.
    fn seen(&self) -> Phase {
        self.changed.take();
        self.get()
    }

    fn set(&self, phase: Phase) {
        let mut current = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        *current = phase;
        self.open.store(phase == Phase::Open, Ordering::Release);
        drop(current);
        self.changed.notify();
    }

    /// Our close frame went out: the reader waits for the reply from now on, unless the
    /// connection is already past the open phase.
    fn close_sent(&self) {
        let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        if *phase == Phase::Open {
            *phase = Phase::CloseSent(Instant::now());
            self.open.store(false, Ordering::Release);
            drop(phase);
            self.changed.notify();
        }
    }

    /// Waits for a change since the last [`seen`](PhaseCell::seen) or wait (the reader only).
    async fn changed(&self) {
        self.changed.wait().await;
    }

    /// Waits until the connection is past the open phase (the reader only).
    async fn closing(&self) {
        while self.get() == Phase::Open {
            self.changed.wait().await;
        }
    }
}

/// The close that ended the connection: the first one sent or received wins.
#[derive(Debug, Default)]
struct Outcome(Mutex<Option<Close>>);

impl Outcome {
    fn record(&self, close: Close) {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(close);
        }
    }

    fn into_close(self) -> Close {
        self.0
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
            .unwrap_or_else(|| Close::new(Close::ABNORMAL, ""))
    }
}

/// Pongs the reader owes the peer, one per ping; beyond a few outstanding, only the latest
/// pings are answered (RFC 6455 §5.5.3 allows answering just the most recent).
#[derive(Debug, Default)]
struct Pongs {
    owed: Mutex<std::collections::VecDeque<Bytes>>,
}

/// Pongs kept waiting at most; a ping flood cannot grow memory.
const MAX_OWED_PONGS: usize = 16;

impl Pongs {
    fn owe(&self, payload: Bytes, client: &Client) {
        let mut owed = self.owed.lock().unwrap_or_else(PoisonError::into_inner);
        if owed.len() == MAX_OWED_PONGS {
            owed.pop_front();
        }
        owed.push_back(payload);
        drop(owed);
        client.urgent_notify.notify();
    }

    fn take(&self) -> Vec<OutFrame> {
        let mut owed = self.owed.lock().unwrap_or_else(PoisonError::into_inner);
        owed.drain(..).map(OutFrame::pong).collect()
    }
}

/// Runs one accepted connection from the completed upgrade to `on_close`.
pub(crate) async fn run<H: Handler>(
    socket: Arc<SocketInner<H>>,
    on_upgrade: OnUpgrade,
    mut session: H::Session,
    remote_addr: SocketAddr,
    protocol: Option<String>,
    deflate: Option<Negotiated>,
    // Holds the connection's place in the limits until the task ends.
    _slot: Slot,
) {
    // In a block of its own, the upgraded connection takes no room in the task once split.
    let (client, halves) = {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(err) => {
                tracing::debug!(peer = %remote_addr, "upgrade failed: {err}");
                return;
            }
        };
        let Some(client) = socket.endpoint.register(remote_addr, protocol) else {
            // Shutdown began between the 101 and the upgrade: say so, without opening.
            let mut io = TokioIo::new(upgraded);
            let frame = OutFrame::close(&Close::new(Close::GOING_AWAY, "Server shutting down"));
            let _ = tokio::time::timeout(
                socket.config.close_timeout,
                write_frames(&mut io, std::slice::from_ref(&frame)),
            )
            .await;
            return;
        };
        (client, Halves::of(upgraded))
    };
    let id = client.id;
    let span = tracing::info_span!("ws", client = %id, peer = %remote_addr);
    let deflate = deflate.as_ref();
    async {
        tracing::debug!("open");
        let close = match halves {
            Halves::Tcp(reader, writer, buf) => {
                drive(&socket, &client, &mut session, reader, writer, buf, deflate).await
            }
            Halves::Other(reader, writer) => {
                let buf = BytesMut::new();
                drive(&socket, &client, &mut session, reader, writer, buf, deflate).await
            }
        };
        socket.endpoint.unregister(id);
        tracing::debug!(code = close.code, reason = %close.reason, "closed");
        let on_close = AssertUnwindSafe(socket.handler.on_close(id, session, close));
        if let Err(panic) = on_close.catch_unwind().await {
            tracing::error!(panic = panic_message(&*panic), "on_close panicked");
        }
    }
    .instrument(span)
    .await;
}

/// The two halves of an upgraded connection.
enum Halves {
    /// Plain TCP: owned halves, no lock between reading and writing; and what hyper read past
    /// the request, the first bytes to decode.
    Tcp(OwnedReadHalf, OwnedWriteHalf, BytesMut),
    /// TLS or another stream hyper upgraded.
    Other(
        ReadHalf<TokioIo<Upgraded>>,
        tokio::io::WriteHalf<TokioIo<Upgraded>>,
    ),
}

impl Halves {
    fn of(upgraded: Upgraded) -> Self {
        match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => {
                let (reader, writer) = parts.io.into_inner().into_split();
                // A copy: the bytes may be a slice of hyper's whole read buffer, which then
                // goes now, not when the connection ends.
                Halves::Tcp(reader, writer, BytesMut::from(&parts.read_buf[..]))
            }
            Err(upgraded) => {
                let (reader, writer) = tokio::io::split(TokioIo::new(upgraded));
                Halves::Other(reader, writer)
            }
        }
    }
}

/// Reads, writes and handles until the connection is over; returns the close that ended it.
async fn drive<H, R, W>(
    socket: &SocketInner<H>,
    client: &Arc<Client>,
    session: &mut H::Session,
    reader: R,
    writer: W,
    buf: BytesMut,
    deflate: Option<&Negotiated>,
) -> Close
where
    H: Handler,
    R: Source,
    W: AsyncWrite + Unpin,
{
    let config = &socket.config;
    let outcome = Outcome::default();
    let pong = Pongs::default();
    let phase = PhaseCell::new();
    let inbox = Queue::new(INBOX, INBOX_BYTES).keeping(crate::queue::burst_keep(config));
    let shared = Shared {
        client,
        outcome: &outcome,
        phase: &phase,
        pong: &pong,
        config,
        deflate,
        streams: <H::Message as DataParam>::STREAMS,
        inbox: &inbox,
    };
    // Polled in this order, one pass reads what arrived, handles it, and writes every answer
    // in one batch; a wake polls only the loops it was for.
    {
        let mut input = Input {
            reader,
            buf,
            read_size: config.read_buffer_size,
            throttle: config.rate_limit.map(Throttle::new),
        };
        let reading = std::pin::pin!(read_loop(&mut input, &shared));
        let handling = std::pin::pin!(handle_loop(&socket.handler, client, session, &inbox));
        // Its hooks' sends to this client skip the registry.
        let handling = std::pin::pin!(socket.endpoint.as_current(client.clone(), handling));
        let writing = std::pin::pin!(write_loop(writer, &shared));
        crate::join::join3(reading, handling, writing).await;
    }
    outcome.into_close()
}

/// What the reader and the writer of one connection share.
struct Shared<'a> {
    client: &'a Client,
    outcome: &'a Outcome,
    phase: &'a PhaseCell,
    pong: &'a Pongs,
    config: &'a Config,
    /// What permessage-deflate agreement there is with this client.
    deflate: Option<&'a Negotiated>,
    /// The handler takes fragmented messages as streams.
    streams: bool,
    /// What the reader hands to the handler.
    inbox: &'a Queue<Incoming>,
}

/// The reader's socket, its buffer and what paces reading.
struct Input<R> {
    reader: R,
    /// The bytes to decode next (without any, it has no memory: the read buffer is allocated
    /// when input arrives, see `fill`).
    buf: BytesMut,
    /// How much the next read asks for.
    read_size: usize,
    throttle: Option<Throttle>,
}

/// Reads, decodes and hands messages to the handler. The input is the caller's: passed by
/// value, it would be held twice in the task, as this function's argument and as its local.
async fn read_loop<R: Source>(input: &mut Input<R>, shared: &Shared<'_>) {
    let Shared { client, config, .. } = *shared;
    // The stream of the fragmented message being read, while the handler takes its chunks;
    // without it, the rest of that message is discarded.
    let mut feeding: Option<Feed> = None;
    let mut decoder = Decoder::with_inflater(
        Limits {
            max_frame: config.max_frame_size,
            max_message: config.max_message_size,
        },
        shared.deflate.map(Inflater::new),
    )
    .streaming(shared.streams);
    // Whole messages decoded from this read, handed to the handler together.
    let mut batch = Batch::default();
    'read: loop {
        // A payload split off the read buffer is still in it.
        let mut pinned = false;
        loop {
            let frames = decoder.frames;
            let event = match decoder.decode(&mut input.buf) {
                Ok(Some(event)) => event,
                Ok(None) => break,
                Err(close) => {
                    tracing::debug!(code = close.code, "failing the connection");
                    // What came before the failure is handled.
                    hand_over(&mut batch, &mut feeding, shared).await;
                    if let Some(stream) = feeding.take() {
                        stream.fail(close.clone());
                    }
                    shared.outcome.record(close.clone());
                    client.close_urgently(close);
                    break 'read;
                }
            };
            let new_frames = decoder.frames - frames;
            batch.frames += new_frames;
            if let Some(throttle) = &mut input.throttle {
                throttle.consume(0, new_frames);
            }
            pinned |= event.shares_read_buffer();
            // The usual case inline: a whole message joins the batch (building `on_event`'s
            // future for it would move that future's whole state per message).
            let event = match event {
                Event::Message(message) if accepts(&message, shared) => {
                    let messages = &mut batch.messages;
                    if messages.capacity() == 0 {
                        *messages = Lend::take();
                        messages.reserve(HAND_OVER);
                    }
                    messages.push(Incoming::Message(message));
                    if messages.len() >= HAND_OVER {
                        hand_over(&mut batch, &mut feeding, shared).await;
                    }
                    continue;
                }
                event => event,
            };
            // Boxed: control frames and fragments are rare next to whole messages, and inline
            // this future made the reader's state half again as large.
            if !Box::pin(on_event(event, &mut batch, &mut feeding, shared)).await {
                break 'read;
            }
        }
        hand_over(&mut batch, &mut feeding, shared).await;
        if pinned {
            // Let the handler and the writer run first (every message decoded from this read
            // goes out in one write): once the payloads are written and dropped, the read
            // buffer is this reader's alone again, and making room in it moves what is left
            // to its front instead of allocating a fresh one (fresh pages, page faults). Only
            // when more input is waiting: otherwise the reader waits for it, and they run
            // meanwhile. The yield is to the other loops of this task, not to the runtime,
            // whose `yield_now` polls its I/O driver (one more `epoll_wait`) first.
            if has_input(&mut input.reader).await {
                crate::join::yield_to_others().await;
            }
        }
        if !fill(input, decoder.wanted(), shared).await {
            break;
        }
    }
    // The handler takes what is queued, then ends.
    hand_over(&mut batch, &mut feeding, shared).await;
    shared.inbox.close();
    shared.phase.set(Phase::ReaderDone);
    client.urgent_notify.notify();
}

/// Acts on one decoded event other than an accepted whole message (the reader batches
/// those); `false` once reading is over (the peer closed). The batch is handed over first, so
/// that the handler sees messages and streams in the order they came.
async fn on_event(
    event: Event,
    batch: &mut Batch,
    feeding: &mut Option<Feed>,
    shared: &Shared<'_>,
) -> bool {
    let client = shared.client;
    hand_over(batch, feeding, shared).await;
    match event {
        Event::Message(Message::Binary(_)) | Event::Begin { text: false, .. }
            if shared.config.text_only =>
        {
            // Not a protocol failure: close properly and keep reading for the reply.
            client.close_urgently(Close::new(
                Close::UNSUPPORTED_DATA,
                "Binary messages are not accepted",
            ));
        }
        Event::Message(message) => {
            // Whole messages are batched by the reader; one comes here only when refused
            // above, so this is not reached, and delivering it would still be right.
            client.stats.messages_read.fetch_add(1, Ordering::Relaxed);
            deliver(Incoming::Message(message), feeding, shared).await;
        }
        Event::Begin { text, chunk } => {
            let (feed, stream) = MessageStream::live(text);
            if !chunk.is_empty() {
                // A new stream has room for its first chunk.
                let _ = feed.tx.try_send(Piece::Chunk(chunk));
            }
            *feeding = Some(feed);
            deliver(Incoming::Stream(stream), feeding, shared).await;
        }
        Event::Chunk(chunk) => {
            if !chunk.is_empty() {
                feed(Piece::Chunk(chunk), feeding, shared).await;
            }
        }
        Event::End(chunk) => {
            client.stats.messages_read.fetch_add(1, Ordering::Relaxed);
            if !chunk.is_empty() {
                feed(Piece::Chunk(chunk), feeding, shared).await;
            }
            feed(Piece::End, feeding, shared).await;
            *feeding = None;
        }
        Event::Ping(payload) => {
            if !client.is_closing() {
                shared.pong.owe(payload, client);
            }
        }
        Event::Pong => {}
        Event::Close(close) => {
            if let Some(stream) = feeding.take() {
                stream.fail(close.clone());
            }
            if shared.phase.get() == Phase::Open {
                // The peer closes first: answer with its code, then end.
                shared.outcome.record(close.clone());
                client.close_urgently(close);
            }
            return false;
        }
    }
    true
}

/// Whether a whole message is accepted (a binary one is not under `text_only`).
fn accepts(message: &Message, shared: &Shared<'_>) -> bool {
    !(shared.config.text_only && matches!(message, Message::Binary(_)))
}

/// What the reader has decoded since its last hand-over: whole messages, and the frames read
/// for them and for anything else. The client's counters are updated once per hand-over (two
/// atomic additions per message were 7 % of the server's time in a burst of small ones).
#[derive(Default)]
struct Batch {
    messages: Vec<Incoming>,
    frames: u64,
}

/// Counts the batch in the client's stats and hands its messages to the handler: as many as
/// its inbox has room for under one lock, the rest one by one as room comes. Leaves the batch
/// empty, its memory given back.
async fn hand_over(batch: &mut Batch, feeding: &mut Option<Feed>, shared: &Shared<'_>) {
    let stats = &shared.client.stats;
    if batch.frames > 0 {
        stats.frames_read.fetch_add(batch.frames, Ordering::Relaxed);
        batch.frames = 0;
    }
    let messages = &mut batch.messages;
    if messages.is_empty() {
        return;
    }
    stats
        .messages_read
        .fetch_add(messages.len() as u64, Ordering::Relaxed);
    if !shared.client.is_closing()
        && shared.inbox.try_push_many(messages).is_ok()
        && !messages.is_empty()
    {
        // The inbox is full: the rest wait for room. Boxed: it is rare, and its state would
        // be part of every connection's reader.
        Box::pin(deliver_all(messages, feeding, shared)).await;
    }
    Lend::give_back(messages);
}

/// Hands messages to the handler one by one, in order, waiting for room in its inbox.
async fn deliver_all(
    messages: &mut Vec<Incoming>,
    feeding: &mut Option<Feed>,
    shared: &Shared<'_>,
) {
    messages.reverse();
    while let Some(incoming) = messages.pop() {
        deliver(incoming, feeding, shared).await;
    }
}

/// Hands a message or a new stream to the handler, waiting while its inbox is full. Once the
/// handler has stopped (it failed and asked for a close), the inbox is closed and what comes
/// is dropped.
async fn deliver(incoming: Incoming, feeding: &mut Option<Feed>, shared: &Shared<'_>) {
    let client = shared.client;
    // Once closing, further data is ignored (RFC 6455 §1.4).
    if client.is_closing() {
        *feeding = None;
        return;
    }
    let queue = shared.inbox;
    let incoming = match queue.try_push(incoming) {
        Err(PushError::Full(incoming)) => incoming,
        Ok(()) | Err(PushError::Closed(_)) => return,
    };
    // Boxed: the reader's state stays small for the usual case, room in the inbox.
    Box::pin(async {
        client.reader_paused.store(true, Ordering::Relaxed);
        tokio::select! {
            _ = queue.push(incoming) => {}
            () = shared.phase.closing() => {}
        }
        client.reader_paused.store(false, Ordering::Relaxed);
    })
    .await;
}

/// Hands the next piece of a streamed message to the handler, waiting while the stream is
/// full. A stream the handler dropped, or one that cannot be fed because the connection is
/// closing, gets nothing more.
async fn feed(piece: Piece, stream: &mut Option<Feed>, shared: &Shared<'_>) {
    let client = shared.client;
    let Some(feed) = stream.as_ref() else {
        return;
    };
    client.reader_paused.store(true, Ordering::Relaxed);
    let taken = tokio::select! {
        sent = feed.tx.send(piece) => sent.is_ok(),
        () = shared.phase.closing() => false,
    };
    client.reader_paused.store(false, Ordering::Relaxed);
    if !taken {
        *stream = None;
    }
}

/// Reads more bytes, within the rate limit and the close timeout; `false` once reading is
/// over (end of stream, error, abort, or no close reply in time).
///
/// A connection with nothing to read holds no read buffer: before reading, it waits for input
/// without one. A small buffer is given back at once (reallocating it is cheap), a large one
/// (grown for large frames, reused from frame to frame) once the connection has been idle for
/// a heartbeat period (the writer pings).
async fn fill<R: Source>(input: &mut Input<R>, wanted: usize, shared: &Shared<'_>) -> bool {
    let Shared { client, config, .. } = *shared;
    let deadline = match shared.phase.seen() {
        Phase::CloseSent(at) => Some(at + config.close_timeout),
        Phase::Abort => return false,
        Phase::Open | Phase::ReaderDone => None,
    };
    if let Some(throttle) = &input.throttle {
        let ready_at = throttle.ready_at();
        if ready_at > Instant::now() {
            client.throttled.store(true, Ordering::Relaxed);
            tokio::select! {
                () = sleep_until(Some(ready_at)) => {}
                () = shared.phase.changed() => {}
            }
            client.throttled.store(false, Ordering::Relaxed);
            return true;
        }
    }
    let Input {
        reader,
        buf,
        read_size,
        throttle,
    } = input;
    if R::WAITS && buf.is_empty() && !has_input(reader).await {
        // Given to the thread's pool while waiting: an idle connection holds no buffer,
        // and a busy thread reuses a few instead of allocating one per read.
        if buf.capacity() <= config.read_buffer_size {
            lend_back(buf);
        }
        let holding = buf.capacity() > 0;
        let reader = &mut *reader;
        tokio::select! {
            biased;
            ready = std::future::poll_fn(move |cx| reader.poll_ready(cx)) => {
                if let Err(err) = ready {
                    tracing::debug!("read failed: {err}");
                    return false;
                }
            }
            () = client.idle.wait(), if holding => {
                *buf = BytesMut::new();
                *read_size = config.read_buffer_size;
                return true;
            }
            () = shared.phase.changed() => return true,
            () = sleep_until(deadline) => {
                no_close_reply();
                return false;
            }
        }
    }
    make_room(buf, wanted, *read_size);
    let spare = buf.capacity() - buf.len();
    // Within the rate limit's burst: a large read buffer must not let a limited client in
    // faster than the limit.
    let allowed = throttle.as_ref().map_or(usize::MAX, Throttle::allowance);
    let read = tokio::select! {
        read = read_at_most(reader, buf, allowed) => read,
        () = shared.phase.changed() => return true,
        () = sleep_until(deadline) => {
            no_close_reply();
            return false;
        }
    };
    match read {
        Ok(0) => false,
        Ok(n) => {
            if n == spare {
                // More is probably waiting: read more at once next time.
                *read_size = (*read_size * 2).min(MAX_READ.max(config.read_buffer_size));
            }
            client
                .stats
                .bytes_read
                .fetch_add(n as u64, Ordering::Relaxed);
            client.touch_read();
            if let Some(throttle) = throttle {
                throttle.consume(n as u64, 0);
            }
            true
        }
        Err(err) => {
            tracing::debug!("read failed: {err}");
            false
        }
    }
}

/// Whether input (or the end of the stream, or an error) can be read now, without waiting;
/// the reader's waker is registered otherwise. Takes the reader as `&mut`: a shared reference
/// held across the await would need `R: Sync`.
fn has_input<R: Source>(reader: &mut R) -> impl Future<Output = bool> + '_ {
    std::future::poll_fn(move |cx| Poll::Ready(reader.poll_ready(cx).is_ready()))
}

/// Makes room in the read buffer for the rest of a frame whose header is in (`wanted` bytes
/// in all), or for a read's worth.
fn make_room(buf: &mut BytesMut, wanted: usize, read_size: usize) {
    if buf.capacity() == 0 {
        *buf = lent_buffer();
    }
    // The rest of a frame whose header is in, or a read's worth.
    let missing = wanted.saturating_sub(buf.len());
    if buf.is_empty() && buf.capacity() > KEEP_READ_BUFFER {
        *buf = BytesMut::with_capacity(read_size);
    } else {
        let spare = buf.capacity() - buf.len();
        // Room is made when the frame would not fit (what is in the buffer moves to its front
        // if it is this reader's alone, else it is copied), and, when little would move, for
        // a full-size read.
        if spare < missing.max(1024) {
            buf.reserve(missing.max(read_size));
        } else if spare < read_size && buf.len() <= CHEAP_MOVE {
            // Never allocates: a buffer still shared with payloads (queued behind a slow
            // `on_data`, or for slow receivers) is left as it is.
            let _: bool = buf.try_reclaim(read_size);
        }
    }
}

/// A read buffer from the thread's pool ([`ReadMemory`]; empty when the pool is). Through
/// `Bytes`, as `bytes` builds a `BytesMut` from a `Vec` no other way without copying; that
/// costs a small bookkeeping allocation, where a read buffer of its own would cost a large
/// one.
fn lent_buffer() -> BytesMut {
    let ReadMemory(memory) = ReadMemory::take();
    if memory.capacity() == 0 {
        return BytesMut::new();
    }
    BytesMut::from(Bytes::from(memory))
}

/// Gives an empty read buffer to the thread's pool ([`ReadMemory`]) if it is this reader's
/// alone; one still shared with payloads split off it is dropped, its memory going with the
/// last of them.
fn lend_back(buf: &mut BytesMut) {
    let mut memory = ReadMemory(Vec::from(std::mem::take(buf)));
    Lend::give_back(&mut memory);
}

/// Reads into `buf`'s spare capacity, at most `limit` bytes.
async fn read_at_most<R: Source>(
    reader: &mut R,
    buf: &mut BytesMut,
    limit: usize,
) -> std::io::Result<usize> {
    if limit >= buf.capacity() - buf.len() {
        return reader.read_buf(buf).await;
    }
    let limit = u64::try_from(limit).unwrap_or(u64::MAX);
    (&mut *reader).take(limit).read_buf(buf).await
}

fn no_close_reply() {
    tracing::debug!("no close reply within the close timeout; dropping the connection");
}

/// Closes a queue when dropped.
struct CloseOnDrop<'a, T: Weighted>(&'a Queue<T>);

impl<T: Weighted> Drop for CloseOnDrop<'_, T> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// A connection's read half.
trait Source: AsyncRead + Unpin {
    /// Whether [`poll_ready`](Source::poll_ready) waits for input, so that reading can wait
    /// without a buffer.
    const WAITS: bool;

    /// Ready once input, the end of the stream or an error can be read.
    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>>;
}

/// Plain TCP: the socket's readiness, polled through its read waker slot (the one reads use;
/// waiting replaces the waker hyper's finished connection task left there, which kept that
/// task's memory alive). `readable()` would wait with a waiter node of 168 bytes in the
/// reader's state.
impl Source for OwnedReadHalf {
    const WAITS: bool = true;

    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.as_ref().poll_read_ready(cx)
    }
}

/// TLS or another upgraded stream: no readiness to wait on, reading needs its buffer.
impl<T: AsyncRead + AsyncWrite + Send> Source for ReadHalf<T> {
    const WAITS: bool = false;

    fn poll_ready(&self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(mut writer: W, shared: &Shared<'_>) {
    let Shared {
        client,
        outcome,
        phase,
        pong,
        config,
        ..
    } = *shared;
    // However it ends, later sends are refused instead of queued for nobody.
    let _done = CloseOnDrop(&client.queue);
    // Boxed: inline, its state made every connection's writer 176 bytes larger.
    let mut deflater = shared.deflate.cloned().map(|d| Box::new(Deflater::new(d)));
    let mut heartbeat = Heartbeat::new(client);
    // One timer for the heartbeat, reset only when its deadline moves: creating a timer per
    // message would cost a timer-wheel insert and removal on the hot path.
    let mut beat = std::pin::pin!(tokio::time::sleep_until(Heartbeat::next(config)));
    let close = loop {
        let control = tokio::select! {
            biased;
            // One wake for everything but data: an urgent close, the reader's end, pongs owed.
            () = client.urgent_notify.wait() => {
                if let Some(close) = client.take_urgent() {
                    break Some(close);
                }
                if phase.get() == Phase::ReaderDone {
                    break None;
                }
                let pongs = pong.take();
                if pongs.is_empty() {
                    continue;
                }
                pongs
            }
            () = &mut beat => {
                // Every tick, busy or not: queues emptied after a burst give their buffers back.
                client.queue.release();
                shared.inbox.release();
                match heartbeat.tick(client, config, beat.as_mut()) {
                Beat::Quiet => continue,
                Beat::Ping => {
                    // Idle for a heartbeat period: the reader gives back its read buffer.
                    client.idle.notify();
                    vec![OutFrame::ping(Bytes::new())]
                }
                Beat::Dead => {
                    tracing::debug!("no answer to {} pings; closing with 1008", config.heartbeat_misses);
                    break Some(Close::new(Close::POLICY_VIOLATION, "Heartbeat timeout"));
                }
            }},
            next = client.queue.pop() => match next {
                Some(Outgoing::Message(frame)) => {
                    // Boxed, with its watch: an idle connection's task does not hold a writing
                    // future's state.
                    let written = Box::pin(async {
                        let batch = std::pin::pin!(write_batch(&mut writer, frame, deflater.as_deref_mut(), shared));
                        write_or_give_up(batch, client, config).await
                    });
                    match written.await {
                        Ok(Ok(None)) => continue,
                        Ok(Ok(Some(close))) => break Some(close),
                        Ok(Err(err)) => {
                            tracing::debug!("write failed: {err}");
                            break None;
                        }
                        Err(close) => {
                            // The peer reads nothing: no close frame could reach it either.
                            tracing::debug!(code = close.code, "the peer is not reading; dropping it");
                            outcome.record(close);
                            phase.set(Phase::Abort);
                            return;
                        }
                    }
                }
                Some(Outgoing::Close(close)) => break Some(close),
                None => break None,
            },
        };
        let sent = Box::pin(async {
            let frames = std::pin::pin!(write_frames(&mut writer, &control));
            write_or_give_up(frames, client, config).await
        })
        .await;
        if !matches!(sent, Ok(Ok(()))) {
            tracing::debug!("control frame not written; dropping the connection");
            phase.set(Phase::Abort);
            return;
        }
        let bytes = control.iter().map(|frame| frame.len() as u64).sum();
        account(client, control.len() as u64, bytes);
    };
    if let Some(close) = close {
        Box::pin(send_close(&mut writer, close, shared)).await;
    }
}

/// Sends our close frame (or the reply to the peer's), records it, and starts the wait for
/// the peer's reply.
async fn send_close<W: AsyncWrite + Unpin>(writer: &mut W, mut close: Close, shared: &Shared<'_>) {
    let Shared {
        client,
        outcome,
        phase,
        config,
        ..
    } = *shared;
    if close.code != Close::NO_STATUS && !Close::is_sendable(close.code) {
        tracing::error!(code = close.code, "close code cannot be sent; using 1011");
        close = Close::new(Close::INTERNAL_ERROR, "Internal error");
    }
    let frame = OutFrame::close(&close);
    let written = tokio::time::timeout(
        config.close_timeout,
        write_frames(writer, std::slice::from_ref(&frame)),
    )
    .await;
    match written {
        Ok(Ok(())) => account(client, 1, frame.len() as u64),
        Ok(Err(err)) => tracing::debug!("sending close failed: {err}"),
        Err(_) => tracing::debug!("close frame not written within the close timeout"),
    }
    outcome.record(close);
    phase.close_sent();
}

/// Counts written frames and bytes.
fn account(client: &Client, frames: u64, bytes: u64) {
    let stats = &client.stats;
    stats.frames_sent.fetch_add(frames, Ordering::Relaxed);
    stats.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
    client.touch_sent();
}

/// Gathers a data message over the send frame size as a fragmented message, written as
/// enough gathers. Between two of its frames, owed pongs go out, and an urgent close ends the
/// message there (control frames may come between fragments, RFC 6455 §5.4). Returns what it
/// gathered and that close.
async fn put_fragments<W: AsyncWrite + Unpin>(
    writer: &mut W,
    gather: &mut Gather,
    frame: OutFrame,
    batch_limit: usize,
    shared: &Shared<'_>,
) -> std::io::Result<(Written, Option<Close>)> {
    let size = shared.config.send_frame_size;
    let mut written = Written::default();
    for (head, range) in frame.fragments(size) {
        let last = range.end == frame.payload.len();
        written.frames += 1;
        written.bytes += (head.bytes().len() + range.len()) as u64;
        gather.push_part(head, frame.payload.slice(range));
        if gather.is_full(batch_limit) {
            gather.write(writer).await?;
        }
        if last {
            break;
        }
        if let Some(close) = shared.client.take_urgent() {
            return Ok((written, Some(close)));
        }
        for pong in shared.pong.take() {
            written.frames += 1;
            written.bytes += pong.len() as u64;
            gather.push(pong);
        }
    }
    Ok((written, None))
}

/// Frames and bytes written for one message.
#[derive(Default)]
struct Written {
    frames: u64,
    bytes: u64,
}

/// Writes these frames and flushes.
async fn write_frames<W: AsyncWrite + Unpin>(
    writer: &mut W,
    frames: &[OutFrame],
) -> std::io::Result<()> {
    let mut gather = Gather::default();
    for frame in frames {
        gather.push(frame.clone());
    }
    gather.write(writer).await?;
    writer.flush().await
}

/// Writes a message and whatever else is already queued, in as few writes as possible, then
/// flushes. Returns a close found in the queue.
async fn write_batch<W: AsyncWrite + Unpin>(
    writer: &mut W,
    first: OutFrame,
    mut deflater: Option<&mut Deflater>,
    shared: &Shared<'_>,
) -> std::io::Result<Option<Close>> {
    let client = shared.client;
    let batch_limit = shared.config.write_buffer_size.max(1024);
    // Counters are updated once per batch.
    let mut pending = Some(first);
    let (mut messages, mut frames, mut bytes) = (0u64, 0u64, 0u64);
    let mut close = None;
    let mut gather = Gather::default();
    // Taken from the queue a write's worth at a time, under one lock.
    let mut taken = VecDeque::new();
    loop {
        let next = if let Some(frame) = pending.take() {
            Outgoing::Message(frame)
        } else if let Some(next) = taken.pop_front() {
            next
        } else {
            if taken.capacity() == 0 {
                taken = Lend::take();
            }
            client
                .queue
                .try_pop_many(&mut taken, TAKE_AT_ONCE, batch_limit, true);
            match taken.pop_front() {
                Some(next) => next,
                None => break,
            }
        };
        let frame = match next {
            Outgoing::Message(frame) => frame,
            Outgoing::Close(c) => {
                close = Some(c);
                break;
            }
        };
        let frame = match deflater.as_deref_mut() {
            Some(deflater) => frame.deflate(deflater),
            None => frame,
        };
        let (written, urgent) = if frame.payload.len() <= shared.config.send_frame_size {
            let written = Written {
                frames: 1,
                bytes: frame.len() as u64,
            };
            // Moved, not cloned: cloning a payload made from a `Vec` would allocate.
            gather.push(frame);
            (written, None)
        } else {
            // Boxed, and only here: a future built and awaited per message costs a copy of
            // its whole state per message (8 % of the server's time in a burst of small ones).
            Box::pin(put_fragments(
                writer,
                &mut gather,
                frame,
                batch_limit,
                shared,
            ))
            .await?
        };
        messages += 1;
        frames += written.frames;
        bytes += written.bytes;
        if urgent.is_some() {
            close = urgent;
            break;
        }
        if gather.is_full(batch_limit) {
            gather.write(writer).await?;
        }
    }
    Lend::give_back(&mut taken);
    gather.write(writer).await?;
    writer.flush().await?;
    account(client, frames, bytes);
    client
        .stats
        .messages_sent
        .fetch_add(messages, Ordering::Relaxed);
    Ok(close)
}

/// Runs a write, giving up on a peer that reads nothing: after the heartbeat's whole allowance
/// (its interval times its misses, 10 s times them without a heartbeat) without completing, or
/// within the close timeout once a close is wanted urgently (a slow consumer, say) while the
/// write is stuck. Gives the close to record when it gives up. The write is pinned by the
/// caller: taken by value, it would be held twice.
async fn write_or_give_up<F: Future>(
    mut batch: Pin<&mut F>,
    client: &Client,
    config: &Config,
) -> Result<F::Output, Close> {
    // The usual case first: a write that completes at once needs no timer (building one
    // reads the clock and the runtime's handle, for every write).
    if let Poll::Ready(done) = std::future::poll_fn(|cx| Poll::Ready(batch.as_mut().poll(cx))).await
    {
        return Ok(done);
    }
    // Boxed: the timers' state would make every write's future larger, and the writer boxes
    // each write; kept under glibc's per-thread cache limit (1 KiB), that box costs a few
    // instructions instead of a trip through the general allocator.
    Box::pin(stalled(batch, client, config)).await
}

/// The rest of a write that did not complete at once: see [`write_or_give_up`].
async fn stalled<F: Future>(
    mut batch: Pin<&mut F>,
    client: &Client,
    config: &Config,
) -> Result<F::Output, Close> {
    tokio::select! {
        biased;
        done = &mut batch => return Ok(done),
        () = tokio::time::sleep(stall(config)) => return Err(Close::new(Close::POLICY_VIOLATION, "Send timeout")),
        () = client.close_wanted.wait() => {}
    }
    match tokio::time::timeout(config.close_timeout, batch).await {
        Ok(done) => Ok(done),
        Err(_) => Err(client
            .take_urgent()
            .unwrap_or_else(|| Close::new(Close::POLICY_VIOLATION, "Send timeout"))),
    }
}

/// What the heartbeat asks for at a tick.
enum Beat {
    /// There was input (or our own backpressure) since the last tick.
    Quiet,
    /// A whole interval without input: ping.
    Ping,
    /// Too many pings went unanswered.
    Dead,
}

/// How long a write may stall before the peer counts as not reading at all.
fn stall(config: &Config) -> Duration {
    config.heartbeat.unwrap_or(Duration::from_secs(10)) * config.heartbeat_misses.max(1)
}

/// Pings a peer that has been silent for a whole interval; gives up after the configured
/// number of unanswered pings. The interval and the misses allowed are read from the config.
struct Heartbeat {
    missed: u32,
    /// The input stamp at the last tick.
    seen: u64,
}

impl Heartbeat {
    fn new(client: &Client) -> Self {
        Heartbeat {
            missed: 0,
            seen: client.input_stamp(),
        }
    }

    /// When the next tick is due: an interval from now, or in a year without a heartbeat.
    fn next(config: &Config) -> Instant {
        Instant::now()
            + config
                .heartbeat
                .unwrap_or(Duration::from_secs(86_400 * 365))
    }

    /// Decides what this tick does, and sets the timer for the next one.
    fn tick(
        &mut self,
        client: &Client,
        config: &Config,
        timer: Pin<&mut tokio::time::Sleep>,
    ) -> Beat {
        timer.reset(Heartbeat::next(config));
        let stamp = client.input_stamp();
        if stamp != self.seen || client.reading_held_back() {
            self.seen = stamp;
            self.missed = 0;
            Beat::Quiet
        } else if self.missed >= config.heartbeat_misses {
            Beat::Dead
        } else {
            self.missed += 1;
            Beat::Ping
        }
    }
}

async fn handle_loop<H: Handler>(
    handler: &H,
    client: &Client,
    session: &mut H::Session,
    inbox: &Queue<Incoming>,
) {
    // However it ends, the reader learns that nothing more is taken.
    let _stopped = CloseOnDrop(inbox);
    let id = client.id;
    if let Err(panic) = AssertUnwindSafe(handler.on_open(id, session))
        .catch_unwind()
        .await
    {
        tracing::error!(
            panic = panic_message(&*panic),
            "on_open panicked; closing with 1011"
        );
        client.close_urgently(internal_error());
        return;
    }
    // Taken from the inbox a few at a time, under one lock.
    let mut taken = VecDeque::new();
    loop {
        let incoming = if let Some(next) = taken.pop_front() {
            next
        } else {
            Lend::give_back(&mut taken);
            let Some(first) = inbox.pop().await else {
                break;
            };
            if inbox.len() > 0 {
                taken = Lend::take();
                // Strict: a heavy message waits in the inbox, within its limit.
                inbox.try_pop_many(&mut taken, HAND_OVER, TAKE_BYTES, false);
            }
            first
        };
        // The conversion runs user code too (`FromMessage`): inside the panic guard.
        let result = AssertUnwindSafe(async {
            let message = match incoming {
                Incoming::Message(message) => H::Message::from_whole(message),
                // Boxed: rare, and inline its state would be part of every connection's task.
                Incoming::Stream(stream) => Box::pin(H::Message::from_stream(stream)).await,
            };
            let message = message.map_err(DataError::Refused)?;
            handler.on_data(id, session, message).await
        })
        .catch_unwind()
        .await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(DataError::Handler(err))) => {
                tracing::error!(error = %err, "on_data returned an error; closing with 1011");
                client.close_urgently(internal_error());
                return;
            }
            Ok(Err(DataError::Refused(close))) => {
                tracing::debug!(code = close.code, reason = %close.reason, "message refused");
                client.close_urgently(close);
                return;
            }
            Err(panic) => {
                tracing::error!(
                    panic = panic_message(&*panic),
                    "on_data panicked; closing with 1011"
                );
                client.close_urgently(internal_error());
                return;
            }
        }
    }
}

fn internal_error() -> Close {
    Close::new(Close::INTERNAL_ERROR, "Internal error")
}

/// Waits until `deadline`, forever without one. The timer is boxed: a deadline exists only
/// for a moment (a close handshake, a throttled read), and inline the timer made every
/// connection's waiting reader 112 bytes larger.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => Box::pin(tokio::time::sleep_until(deadline)).await,
        None => std::future::pending().await,
    }
}

pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-string panic payload)")
}

/// Bursts up to this much of the rate pass at once.
const BURST: Duration = Duration::from_secs(1);

/// A rate limit kept as the "theoretical arrival time" of bytes and of frames (GCRA): each
/// unit read pushes it forward by 1/rate; reading waits while it is more than `BURST` ahead.
struct Throttle {
    limit: RateLimit,
    bytes_at: Instant,
    frames_at: Instant,
}

impl Throttle {
    fn new(limit: RateLimit) -> Self {
        let now = Instant::now();
        Throttle {
            limit,
            bytes_at: now,
            frames_at: now,
        }
    }

    /// When reading may go on.
    fn ready_at(&self) -> Instant {
        let ahead = self.bytes_at.max(self.frames_at);
        ahead.checked_sub(BURST).unwrap_or(ahead)
    }

    /// Bytes that may be read now without going past the burst (at least 1 KiB, so that
    /// reading goes on in steps once it may).
    fn allowance(&self) -> usize {
        let ahead = self.bytes_at.saturating_duration_since(Instant::now());
        let left = BURST.saturating_sub(ahead).as_secs_f64();
        let bytes = left * self.limit.bytes_per_second as f64;
        // Saturating: a fraction of the limit per second, never more than it.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let bytes = bytes as usize;
        bytes.max(1024)
    }

    fn consume(&mut self, bytes: u64, frames: u64) {
        let now = Instant::now();
        if bytes > 0 {
            self.bytes_at = self.bytes_at.max(now) + cost(bytes, self.limit.bytes_per_second);
        }
        if frames > 0 {
            self.frames_at = self.frames_at.max(now) + cost(frames, self.limit.frames_per_second);
        }
    }
}

/// How long `units` take at `per_second`.
fn cost(units: u64, per_second: u64) -> Duration {
    let nanos = u128::from(units) * 1_000_000_000 / u128::from(per_second.max(1));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    /// A read buffer that is the reader's alone goes to the thread's pool and is lent again;
    /// one still shared with a payload split off it is not pooled.
    #[test]
    fn read_buffers_are_pooled_only_when_the_readers_alone() {
        let mut buf = BytesMut::with_capacity(1024);
        buf.extend_from_slice(b"frame");
        buf.clear();
        let memory = buf.as_ptr();
        lend_back(&mut buf);
        assert_eq!(buf.capacity(), 0, "nothing left in its place");
        let again = lent_buffer();
        assert_eq!(again.as_ptr(), memory, "the same allocation");
        assert!(again.capacity() >= 1024);

        let mut buf = BytesMut::with_capacity(1024);
        buf.extend_from_slice(&[7; 100]);
        let payload = buf.split_to(100);
        lend_back(&mut buf);
        assert_eq!(lent_buffer().capacity(), 0, "the pool is empty");
        assert_eq!(payload[..], [7; 100]);
    }

    #[test]
    fn the_reader_is_woken_by_phase_changes_made_after_it_looked() {
        let phase = PhaseCell::new();
        assert_eq!(phase.seen(), Phase::Open);
        assert!(phase.changed().now_or_never().is_none(), "no change yet");
        assert!(phase.closing().now_or_never().is_none(), "still open");
        phase.close_sent();
        let Phase::CloseSent(at) = phase.get() else {
            panic!("our close went out: {:?}", phase.get());
        };
        assert!(
            phase.changed().now_or_never().is_some(),
            "a change after `seen`"
        );
        phase.close_sent();
        assert_eq!(
            phase.get(),
            Phase::CloseSent(at),
            "the first close's instant stays"
        );
        phase.set(Phase::Abort);
        phase.close_sent();
        assert_eq!(
            phase.seen(),
            Phase::Abort,
            "past the open phase, no close is recorded"
        );
        assert!(
            phase.changed().now_or_never().is_none(),
            "a change seen already does not wake again"
        );
        assert!(phase.closing().now_or_never().is_some());
    }

    #[test]
    fn throttle_allows_a_burst_then_paces() {
        let mut throttle = Throttle::new(RateLimit {
            bytes_per_second: 1000,
            frames_per_second: 10,
        });
        let mut throttle_big = Throttle::new(RateLimit {
            bytes_per_second: 100_000,
            frames_per_second: 10,
        });
        // A fresh limit allows its one-second burst, and less once some is used.
        let fresh = throttle_big.allowance();
        assert_eq!(fresh, 100_000);
        throttle_big.consume(60_000, 0);
        // 40,000, and more by the time that passes meanwhile (a loaded test machine).
        let left = throttle_big.allowance();
        assert!((40_000..100_000).contains(&left), "{left}");
        throttle_big.consume(200_000, 0);
        assert_eq!(throttle_big.allowance(), 1024, "at least a step");
        throttle.consume(900, 5);
        assert!(
            throttle.ready_at() <= Instant::now(),
            "within the one-second burst"
        );
        throttle.consume(1100, 0);
        let wait = throttle.ready_at() - Instant::now();
        assert!(
            wait > Duration::from_millis(900) && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert_eq!(cost(3, 2), Duration::from_millis(1500));
    }
}
