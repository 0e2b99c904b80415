//! The connection task: reading, writing and handling run side by side per client; the close
//! handshake; the one `on_close` per opened connection; and the byte and frame counters.

use std::any::Any;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Error as WsError};
use tracing::Instrument;
use warp::hyper::upgrade::{OnUpgrade, Upgraded};

use crate::config::{Config, RateLimit};
use crate::endpoint::{Client, Outgoing};
use crate::handler::{DataError, Handler};
use crate::limits::Slot;
use crate::message::{Close, Message, Text};
use crate::server::until;
use crate::socket::SocketInner;

type Io = CountingIo<TokioIo<Upgraded>>;

/// Messages read ahead of `on_data`. Small, since each may be as large as the message limit.
const INBOX: usize = 2;

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

/// The close that ended the connection: the first one sent or received wins.
#[derive(Debug, Default)]
struct Outcome(Mutex<Option<Close>>);

impl Outcome {
    fn record(&self, close: Close) {
        let mut slot = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(close);
        }
    }

    fn into_close(self) -> Close {
        self.0
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .unwrap_or_else(|| Close::new(Close::ABNORMAL, ""))
    }
}

/// Runs one accepted connection from the completed upgrade to `on_close`.
pub(crate) async fn run<H: Handler>(
    socket: Arc<SocketInner<H>>,
    on_upgrade: OnUpgrade,
    mut session: H::Session,
    remote_addr: SocketAddr,
    protocol: Option<String>,
    // Holds the connection's place in the limits until the task ends.
    _slot: Slot,
) {
    let upgraded = match on_upgrade.await {
        Ok(upgraded) => upgraded,
        Err(err) => {
            tracing::debug!(peer = %remote_addr, "upgrade failed: {err}");
            return;
        }
    };
    let config = &socket.config;
    let Some((client, rx)) = socket.endpoint.register(remote_addr, protocol) else {
        // Shutdown began between the 101 and the upgrade: say so, without opening.
        let mut ws = WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            Some(config.tungstenite()),
        )
        .await;
        let frame = close_frame(&Close::new(Close::GOING_AWAY, "Server shutting down"));
        let _ = tokio::time::timeout(config.close_timeout, ws.close(Some(frame))).await;
        return;
    };
    let id = client.id;
    let span = tracing::info_span!("ws", client = %id, peer = %remote_addr);
    async {
        tracing::debug!("open");
        let io = CountingIo::new(TokioIo::new(upgraded), client.clone(), config.rate_limit);
        let ws =
            WebSocketStream::from_raw_socket(io, Role::Server, Some(config.tungstenite())).await;
        let close = drive(&socket.handler, &client, &mut session, ws, rx, config).await;
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

/// Reads, writes and handles until the connection is over; returns the close that ended it.
async fn drive<H: Handler>(
    handler: &H,
    client: &Client,
    session: &mut H::Session,
    ws: WebSocketStream<Io>,
    rx: mpsc::Receiver<Outgoing>,
    config: &Config,
) -> Close {
    let (sink, stream) = ws.split();
    let outcome = Outcome::default();
    let (phase, _) = watch::channel(Phase::Open);
    let (inbox_tx, inbox_rx) = mpsc::channel(INBOX);
    tokio::join!(
        read_loop(stream, inbox_tx, client, &outcome, &phase, config),
        write_loop(sink, rx, client, &outcome, &phase, config),
        handle_loop(handler, client, session, inbox_rx),
    );
    // Wakes senders waiting for room in this client's queue: there will be none.
    client.queue_bytes.close();
    outcome.into_close()
}

async fn read_loop(
    mut stream: futures_util::stream::SplitStream<WebSocketStream<Io>>,
    inbox: mpsc::Sender<Message>,
    client: &Client,
    outcome: &Outcome,
    phase: &watch::Sender<Phase>,
    config: &Config,
) {
    let mut phase_rx = phase.subscribe();
    let mut inbox = Some(inbox);
    loop {
        let deadline = match *phase_rx.borrow_and_update() {
            Phase::CloseSent(at) => Some(at + config.close_timeout),
            Phase::Abort => break,
            Phase::Open | Phase::ReaderDone => None,
        };
        let item = tokio::select! {
            item = stream.next() => item,
            Ok(()) = phase_rx.changed() => continue,
            () = sleep_until(deadline) => {
                tracing::debug!("no close reply within the close timeout; dropping the connection");
                break;
            }
        };
        let message = match item {
            None => break,
            Some(Ok(tungstenite::Message::Text(text))) => {
                Message::Text(Text::from_utf8_bytes(text))
            }
            Some(Ok(tungstenite::Message::Binary(_))) if config.text_only => {
                // Not a protocol failure: close properly and keep reading for the reply.
                let close = Close::new(Close::UNSUPPORTED_DATA, "Binary messages are not accepted");
                client.close_urgently(close);
                continue;
            }
            Some(Ok(tungstenite::Message::Binary(bytes))) => Message::Binary(bytes),
            Some(Ok(tungstenite::Message::Close(frame))) => {
                // Keep reading: tungstenite flushes its reply on the next read, then ends.
                outcome.record(frame.map_or_else(
                    || Close::new(Close::NO_STATUS, ""),
                    |f| Close::new(f.code.into(), f.reason.as_str()),
                ));
                continue;
            }
            Some(Ok(_)) => continue,
            Some(Err(err)) => {
                if let Some(close) = close_for_error(&err) {
                    tracing::debug!(code = close.code, "failing the connection: {err}");
                    outcome.record(close.clone());
                    client.close_urgently(close);
                } else {
                    tracing::debug!("connection ended: {err}");
                }
                break;
            }
        };
        client.stats.messages_read.fetch_add(1, Ordering::Relaxed);
        // Once closing, further data is ignored (RFC 6455 §1.4).
        let Some(tx) = inbox.as_ref().filter(|_| !client.is_closing()) else {
            continue;
        };
        client.reader_paused.store(true, Ordering::Relaxed);
        tokio::select! {
            sent = tx.send(message) => if sent.is_err() {
                // The handler has stopped (it failed and asked for a close).
                inbox = None;
            },
            () = until(&mut phase_rx, |p| *p != Phase::Open) => {}
        }
        client.reader_paused.store(false, Ordering::Relaxed);
    }
    phase.send_replace(Phase::ReaderDone);
}

async fn write_loop(
    mut sink: futures_util::stream::SplitSink<WebSocketStream<Io>, tungstenite::Message>,
    mut rx: mpsc::Receiver<Outgoing>,
    client: &Client,
    outcome: &Outcome,
    phase: &watch::Sender<Phase>,
    config: &Config,
) {
    let mut phase_rx = phase.subscribe();
    let mut heartbeat = Heartbeat::new(config, client);
    // A peer whose socket accepts no bytes for this long is not reading at all.
    let stall = config
        .heartbeat
        .unwrap_or(std::time::Duration::from_secs(10))
        * config.heartbeat_misses.max(1);
    let close = loop {
        tokio::select! {
            biased;
            () = client.urgent_notify.notified() => {
                if let Some(close) = client.take_urgent() {
                    break Some(close);
                }
            }
            () = until(&mut phase_rx, |p| *p == Phase::ReaderDone) => break client.take_urgent(),
            () = sleep_until(heartbeat.next) => match heartbeat.tick(client) {
                Beat::Quiet => {}
                Beat::Ping => {
                    if let Err(err) = sink.send(tungstenite::Message::Ping(Bytes::new())).await {
                        tracing::debug!("ping failed: {err}");
                        break None;
                    }
                }
                Beat::Dead => {
                    tracing::debug!("no answer to {} pings; closing with 1008", config.heartbeat_misses);
                    break Some(Close::new(Close::POLICY_VIOLATION, "Heartbeat timeout"));
                }
            },
            out = rx.recv() => match out {
                Some(Outgoing::Message(message, permits)) => {
                    let batch = write_batch(&mut sink, message, permits, &mut rx, client);
                    match write_or_give_up(batch, client, config, stall).await {
                        Ok(Ok(None)) => {}
                        Ok(Ok(Some(close))) => break Some(close),
                        Ok(Err(err)) => {
                            tracing::debug!("write failed: {err}");
                            break None;
                        }
                        Err(close) => {
                            // The peer reads nothing: no close frame could reach it either.
                            tracing::debug!(code = close.code, "the peer is not reading; dropping it");
                            outcome.record(close);
                            phase.send_replace(Phase::Abort);
                            return;
                        }
                    }
                }
                Some(Outgoing::Close(close)) => break Some(close),
                None => break None,
            },
        }
    };
    let Some(mut close) = close else { return };
    if !Close::is_sendable(close.code) {
        tracing::error!(code = close.code, "close code cannot be sent; using 1011");
        close = Close::new(Close::INTERNAL_ERROR, "Internal error");
    }
    let frame = tungstenite::Message::Close(Some(close_frame(&close)));
    match tokio::time::timeout(config.close_timeout, sink.send(frame)).await {
        Ok(Err(WsError::Protocol(ProtocolError::SendAfterClosing) | WsError::AlreadyClosed)) => {
            // The peer closed first; its close is the outcome.
        }
        Ok(result) => {
            if let Err(err) = result {
                tracing::debug!("sending close failed: {err}");
            }
            outcome.record(close);
        }
        Err(_) => {
            tracing::debug!("close frame not written within the close timeout");
            outcome.record(close);
        }
    }
    phase.send_if_modified(|p| {
        let open = *p == Phase::Open;
        if open {
            *p = Phase::CloseSent(Instant::now());
        }
        open
    });
}

/// Runs a write, giving up on a peer that reads nothing: after `stall` without completing, or
/// within the close timeout once a close is wanted urgently (a slow consumer, say) while the
/// write is stuck. Gives the close to record when it gives up.
async fn write_or_give_up<F: Future>(
    batch: F,
    client: &Client,
    config: &Config,
    stall: std::time::Duration,
) -> Result<F::Output, Close> {
    let mut batch = std::pin::pin!(batch);
    let stalled = tokio::time::sleep(stall);
    tokio::select! {
        done = &mut batch => return Ok(done),
        () = stalled => return Err(Close::new(Close::POLICY_VIOLATION, "Send timeout")),
        () = client.urgent_notify.notified() => {}
    }
    // Keep the notification for the writer loop, which sends the close once the write is done.
    client.urgent_notify.notify_one();
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

/// Pings a peer that has been silent for a whole interval; gives up after the configured
/// number of unanswered pings.
struct Heartbeat {
    interval: Option<std::time::Duration>,
    misses: u32,
    missed: u32,
    seen: u64,
    next: Option<Instant>,
}

impl Heartbeat {
    fn new(config: &Config, client: &Client) -> Self {
        Heartbeat {
            interval: config.heartbeat,
            misses: config.heartbeat_misses,
            missed: 0,
            seen: client.input_stamp(),
            next: config.heartbeat.map(|i| Instant::now() + i),
        }
    }

    fn tick(&mut self, client: &Client) -> Beat {
        self.next = self.interval.map(|i| Instant::now() + i);
        let stamp = client.input_stamp();
        if stamp != self.seen || client.reading_held_back() {
            self.seen = stamp;
            self.missed = 0;
            Beat::Quiet
        } else if self.missed >= self.misses {
            Beat::Dead
        } else {
            self.missed += 1;
            Beat::Ping
        }
    }
}

/// Writes a message and whatever else is already queued, then flushes once.
/// Returns a close found in the queue.
async fn write_batch(
    sink: &mut futures_util::stream::SplitSink<WebSocketStream<Io>, tungstenite::Message>,
    first: tungstenite::Message,
    permits: u32,
    rx: &mut mpsc::Receiver<Outgoing>,
    client: &Client,
) -> Result<Option<Close>, WsError> {
    let sent = &client.stats.messages_sent;
    // Once in the codec's buffer a frame no longer counts against the queue's bytes. After a
    // failed write nothing is given back: the connection is over and waiting senders are
    // released by closing the semaphore.
    sink.feed(first).await?;
    client.release(permits);
    sent.fetch_add(1, Ordering::Relaxed);
    let mut close = None;
    while let Ok(next) = rx.try_recv() {
        match next {
            Outgoing::Message(message, permits) => {
                sink.feed(message).await?;
                client.release(permits);
                sent.fetch_add(1, Ordering::Relaxed);
            }
            Outgoing::Close(c) => {
                close = Some(c);
                break;
            }
        }
    }
    sink.flush().await?;
    Ok(close)
}

async fn handle_loop<H: Handler>(
    handler: &H,
    client: &Client,
    session: &mut H::Session,
    mut inbox: mpsc::Receiver<Message>,
) {
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
    while let Some(message) = inbox.recv().await {
        let result = AssertUnwindSafe(handler.on_data(id, session, message))
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

/// The close to send when reading failed, or `None` when the connection is simply gone.
fn close_for_error(err: &WsError) -> Option<Close> {
    match err {
        WsError::ConnectionClosed
        | WsError::AlreadyClosed
        | WsError::Io(_)
        | WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        WsError::Capacity(_) => Some(Close::new(Close::TOO_BIG, "Message too big")),
        WsError::Utf8(_) => Some(Close::new(Close::INVALID_DATA, "Invalid UTF-8")),
        _ => Some(Close::new(Close::PROTOCOL_ERROR, "Protocol error")),
    }
}

fn close_frame(close: &Close) -> CloseFrame {
    CloseFrame {
        code: close.code.into(),
        reason: crate::endpoint::truncate_reason(&close.reason).into(),
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
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

/// Counts bytes and frames in both directions, stamps the last read and write times, and
/// holds reading back to the rate limit.
struct CountingIo<T> {
    inner: T,
    client: Arc<Client>,
    read_frames: FrameCounter,
    write_frames: FrameCounter,
    throttle: Option<Throttle>,
}

impl<T> CountingIo<T> {
    fn new(inner: T, client: Arc<Client>, limit: Option<RateLimit>) -> Self {
        CountingIo {
            inner,
            client,
            read_frames: FrameCounter::default(),
            write_frames: FrameCounter::default(),
            throttle: limit.map(Throttle::new),
        }
    }
}

/// Bursts up to this much of the rate pass at once.
const BURST: std::time::Duration = std::time::Duration::from_secs(1);

/// A rate limit kept as the "theoretical arrival time" of bytes and of frames (GCRA): each
/// unit read pushes it forward by 1/rate; reading waits while it is more than `BURST` ahead.
struct Throttle {
    limit: RateLimit,
    bytes_at: Instant,
    frames_at: Instant,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Throttle {
    fn new(limit: RateLimit) -> Self {
        let now = Instant::now();
        Throttle {
            limit,
            bytes_at: now,
            frames_at: now,
            sleep: Box::pin(tokio::time::sleep_until(now)),
        }
    }

    /// When reading may go on.
    fn ready_at(&self) -> Instant {
        let ahead = self.bytes_at.max(self.frames_at);
        ahead.checked_sub(BURST).unwrap_or(ahead)
    }

    fn consume(&mut self, bytes: u64, frames: u64) {
        let now = Instant::now();
        self.bytes_at = self.bytes_at.max(now) + cost(bytes, self.limit.bytes_per_second);
        self.frames_at = self.frames_at.max(now) + cost(frames, self.limit.frames_per_second);
    }
}

/// How long `units` take at `per_second`.
fn cost(units: u64, per_second: u64) -> std::time::Duration {
    let nanos = u128::from(units) * 1_000_000_000 / u128::from(per_second.max(1));
    std::time::Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

impl<T: AsyncRead + Unpin> AsyncRead for CountingIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if let Some(throttle) = &mut this.throttle {
            let ready_at = throttle.ready_at();
            if ready_at > Instant::now() {
                throttle.sleep.as_mut().reset(ready_at);
                if throttle.sleep.as_mut().poll(cx).is_pending() {
                    this.client.throttled.store(true, Ordering::Relaxed);
                    return Poll::Pending;
                }
            }
            this.client.throttled.store(false, Ordering::Relaxed);
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        let new = &buf.filled()[before..];
        if !new.is_empty() {
            let stats = &this.client.stats;
            stats
                .bytes_read
                .fetch_add(new.len() as u64, Ordering::Relaxed);
            let frames = this.read_frames.feed(new);
            if frames > 0 {
                stats.frames_read.fetch_add(frames, Ordering::Relaxed);
            }
            this.client.touch_read();
            if let Some(throttle) = &mut this.throttle {
                throttle.consume(new.len() as u64, frames);
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CountingIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, data))?;
        if n > 0 {
            let stats = &this.client.stats;
            stats.bytes_sent.fetch_add(n as u64, Ordering::Relaxed);
            let frames = this.write_frames.feed(&data[..n]);
            if frames > 0 {
                stats.frames_sent.fetch_add(frames, Ordering::Relaxed);
            }
            this.client.touch_sent();
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Follows frame boundaries in a byte stream by reading each header's length fields.
#[derive(Debug, Default)]
struct FrameCounter {
    header: [u8; 14],
    have: usize,
    payload_left: u64,
}

impl FrameCounter {
    /// Consumes bytes; returns how many frame headers were completed.
    fn feed(&mut self, mut data: &[u8]) -> u64 {
        let mut frames = 0;
        while !data.is_empty() {
            if self.payload_left > 0 {
                let take = usize::try_from(self.payload_left)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                self.payload_left -= take as u64;
                data = &data[take..];
                continue;
            }
            let want = if self.have < 2 {
                2
            } else {
                header_len(self.header[1])
            };
            let take = (want - self.have).min(data.len());
            self.header[self.have..self.have + take].copy_from_slice(&data[..take]);
            self.have += take;
            data = &data[take..];
            if self.have >= 2 && self.have == header_len(self.header[1]) {
                frames += 1;
                self.payload_left = payload_len(&self.header);
                self.have = 0;
            }
        }
        frames
    }
}

fn header_len(second: u8) -> usize {
    let extended = match second & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if second & 0x80 == 0 { 0 } else { 4 };
    2 + extended + mask
}

fn payload_len(header: &[u8; 14]) -> u64 {
    match header[1] & 0x7f {
        126 => u64::from(u16::from_be_bytes([header[2], header[3]])),
        127 => u64::from_be_bytes([
            header[2], header[3], header[4], header[5], header[6], header[7], header[8], header[9],
        ]),
        n => u64::from(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: usize, masked: bool) -> Vec<u8> {
        let mut out = vec![0x82];
        let mask = if masked { 0x80 } else { 0 };
        match payload {
            0..=125 => out.push(mask | u8::try_from(payload).unwrap()),
            126..=65535 => {
                out.push(mask | 0x7e);
                out.extend_from_slice(&u16::try_from(payload).unwrap().to_be_bytes());
            }
            _ => {
                out.push(mask | 0x7f);
                out.extend_from_slice(&(payload as u64).to_be_bytes());
            }
        }
        if masked {
            out.extend_from_slice(&[1, 2, 3, 4]);
        }
        out.extend(std::iter::repeat_n(7u8, payload));
        out
    }

    proptest::proptest! {
        /// However a stream of frames is cut into reads, every frame is counted once.
        #[test]
        fn counts_frames_across_random_splits(
            frames in proptest::collection::vec((0usize..70_000, proptest::bool::ANY), 1..12),
            cuts in proptest::collection::vec(1usize..5000, 1..40),
        ) {
            let mut stream = Vec::new();
            for (len, masked) in &frames {
                stream.extend(frame(*len, *masked));
            }
            let mut counter = FrameCounter::default();
            let mut total = 0;
            let mut rest = stream.as_slice();
            let mut cuts = cuts.iter().cycle();
            while !rest.is_empty() {
                let n = (*cuts.next().unwrap()).min(rest.len());
                total += counter.feed(&rest[..n]);
                rest = &rest[n..];
            }
            proptest::prop_assert_eq!(total, frames.len() as u64);
        }

        /// Arbitrary bytes never make the counter panic or loop.
        #[test]
        fn counter_survives_garbage(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..4096)) {
            let mut counter = FrameCounter::default();
            let _ = counter.feed(&bytes);
        }
    }

    #[test]
    fn counts_frames_across_any_split() {
        let mut stream = Vec::new();
        for (len, masked) in [
            (0, true),
            (5, false),
            (125, true),
            (126, true),
            (70_000, false),
        ] {
            stream.extend(frame(len, masked));
        }
        for chunk in [1, 2, 3, 7, 100, 4096, stream.len()] {
            let mut counter = FrameCounter::default();
            let total: u64 = stream.chunks(chunk).map(|c| counter.feed(c)).sum();
            assert_eq!(total, 5, "chunk size {chunk}");
            assert_eq!(counter.have, 0);
            assert_eq!(counter.payload_left, 0);
        }
    }
}
