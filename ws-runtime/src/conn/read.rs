//! The read loop: reads within the rate limit and the close handshake's deadline, decodes,
//! and hands messages to the handler in batches (and fragmented messages as streams, to a
//! handler that takes them), pausing while the handler's inbox is full.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::task::Poll;

use bytes::{Bytes, BytesMut};
use tokio::time::Instant;

use super::close::CloseHandshake;
use super::dispatch::HAND_OVER;
use super::throttle::Throttle;
use super::{Shared, Source, WORK_SLICE, sleep_until};
use crate::message::{Close, Message};
use crate::proto::deflate::Inflater;
use crate::proto::{Decoder, Event, Limits, ProtocolError};
use crate::rt::lend::{Lend, lend};
use crate::rt::queue::PushError;
use crate::stream::{Feed, Incoming, MessageStream, Piece};

/// The read size grows to this while reads keep filling the buffer (a burst of small
/// messages is then read, handled and answered in few system calls), and falls back to
/// `Config::read_buffer_size` once the connection is idle.
const MAX_READ: usize = 128 << 10;

/// Bytes the reader moves to its buffer's front to make room for a full-size read.
const CHEAP_MOVE: usize = 8 << 10;

/// A read buffer grown past this for a large message is given back once it is empty.
const KEEP_READ_BUFFER: usize = 256 << 10;

/// The reader's socket, its buffer and what paces reading.
pub(super) struct Input<R> {
    pub(super) reader: R,
    /// The bytes to decode next (without any, it has no memory: the read buffer is allocated
    /// when input arrives, see `fill`).
    pub(super) buf: BytesMut,
    /// How much the next read asks for.
    pub(super) read_size: usize,
    pub(super) throttle: Option<Throttle>,
}

/// Reads, decodes and hands messages to the handler until the peer closes, the connection
/// ends, or the peer breaks the protocol (the connection is then failed, after the replies
/// to what came before). The input is the caller's: passed by value, it would be held twice
/// in the task, as this function's argument and as its local.
pub(super) async fn read_loop<R: Source>(input: &mut Input<R>, shared: &Shared<'_>) {
    // Failing waits after reading is over: its state takes the place of the reading's.
    if let Some(error) = read(input, shared).await {
        fail(error.close(), shared).await;
    }
    shared.inbox.close();
    shared.close.reader_done(shared.client);
}

/// Reads and hands messages to the handler; the rule the peer broke, if it did.
async fn read<R: Source>(input: &mut Input<R>, shared: &Shared<'_>) -> Option<ProtocolError> {
    let config = shared.config;
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
    // The rate limit wants a pause before more is decoded.
    let mut ahead = false;
    // The slice of inflating work (see `WORK_SLICE`) the reader last yielded in.
    let mut slice = 0;
    'read: loop {
        // A payload split off the read buffer is still in it.
        let mut pinned = false;
        loop {
            if ahead {
                // Ahead of the rate limit within one read (many frames, or compressed ones
                // that inflate to far more than their size on the wire): what was decoded is
                // handed over, and decoding waits.
                ahead = false;
                hand_over(&mut batch, &mut feeding, shared).await;
                if let Some(throttle) = &input.throttle {
                    // Boxed: rare, and inline its timer would be part of every reader.
                    Box::pin(pause(throttle, shared)).await;
                }
            }
            if decoder.inflated() / WORK_SLICE != slice {
                // A slice of inflating done: other connections' tasks run before more.
                slice = decoder.inflated() / WORK_SLICE;
                hand_over(&mut batch, &mut feeding, shared).await;
                tokio::task::yield_now().await;
            }
            let (frames, inflated) = (decoder.frames, decoder.inflated());
            let event = match decoder.decode(&mut input.buf) {
                Ok(Some(event)) => event,
                Ok(None) => break,
                Err(error) => {
                    let close = error.close();
                    tracing::debug!(%error, code = close.code, "failing the connection");
                    // What came before the failure is handled.
                    hand_over(&mut batch, &mut feeding, shared).await;
                    if let Some(stream) = feeding.take() {
                        stream.fail(close);
                    }
                    return Some(error);
                }
            };
            let new_frames = decoder.frames - frames;
            batch.frames += new_frames;
            if let Some(throttle) = &mut input.throttle {
                ahead = throttle.decoded(new_frames, decoder.inflated() - inflated);
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
            // this future would enlarge the reader's state, which every connection holds.
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
                crate::rt::join::yield_to_others().await;
            }
        }
        if !fill(input, decoder.wanted(), shared).await {
            break;
        }
    }
    // The handler takes what is queued, then ends.
    hand_over(&mut batch, &mut feeding, shared).await;
    None
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
            client.meter.read(1, 0);
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
            client.meter.read(1, 0);
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
        Event::Pong => client.pong_read(),
        Event::Close(close) => {
            if let Some(stream) = feeding.take() {
                stream.fail(close.clone());
            }
            shared.close.peer_closed(close, client);
            return false;
        }
    }
    true
}

/// Fails the connection after the replies to what came before the failure (RFC 6455 asks
/// for no more than a close, but a peer that sent a valid message and then a bad frame in one
/// write gets its answer, as Autobahn's strict cases check): the close goes to the handler's
/// inbox behind the messages read before it, and the handler queues it behind the replies
/// they produced. Once it is sent, the reader stops. If that takes longer than the close
/// timeout (a slow `on_data`, a full inbox), the close goes out at once, ahead of them.
async fn fail(close: Close, shared: &Shared<'_>) {
    shared.close.failed(close.clone());
    let in_order = async {
        if shared
            .inbox
            .push(Incoming::Fail(close.clone()))
            .await
            .is_err()
        {
            // The handler has stopped: nothing more is answered.
            return false;
        }
        shared.close.closing().await;
        true
    };
    let sent = tokio::time::timeout(shared.config.close_timeout, in_order).await;
    if !matches!(sent, Ok(true)) {
        shared.client.close_urgently(close);
    }
}

/// Whether a whole message is accepted (a binary one is not under `text_only`).
fn accepts(message: &Message, shared: &Shared<'_>) -> bool {
    !(shared.config.text_only && matches!(message, Message::Binary(_)))
}

/// What the reader has decoded since its last hand-over: whole messages, and the frames read
/// for them and for anything else. The client's counters are updated once per hand-over:
/// atomic additions per message were a visible cost of a burst of small ones.
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
    shared.client.meter.read(messages.len() as u64, 0);
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
            () = shared.close.closing() => {}
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
        () = shared.close.closing() => false,
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
    let Ok(deadline) = shared.close.read_deadline(config.close_timeout) else {
        return false;
    };
    if let Some(throttle) = &input.throttle {
        if throttle.ready_at() > Instant::now() {
            pause(throttle, shared).await;
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
            () = shared.close.changed() => return true,
            () = sleep_until(deadline) => {
                CloseHandshake::no_reply();
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
        () = shared.close.changed() => return true,
        () = sleep_until(deadline) => {
            CloseHandshake::no_reply();
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
            client.meter.read(0, n as u64);
            client.touch_read();
            if let Some(throttle) = throttle {
                throttle.read(n as u64);
            }
            true
        }
        Err(err) => {
            tracing::debug!("read failed: {err}");
            false
        }
    }
}

/// Waits while the client is ahead of its rate limit (or until the close handshake moves:
/// reading then goes on, for the peer's close).
async fn pause(throttle: &Throttle, shared: &Shared<'_>) {
    let client = shared.client;
    client.throttled.store(true, Ordering::Relaxed);
    client.meter.rate_limit_pause();
    tokio::select! {
        () = sleep_until(Some(throttle.ready_at())) => {}
        () = shared.close.changed() => {}
    }
    client.throttled.store(false, Ordering::Relaxed);
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
    align(buf);
}

/// Starts an empty read buffer on a cache line. The kernel copies a read into it with `rep
/// movsb`, which on some CPUs copies at half speed into a destination that is not
/// cache-line aligned: on this project's benchmark machine (AMD EPYC) a 64 KiB read into
/// memory from `malloc` (16 bytes past a line) took twice as long as into an aligned one. The
/// bytes skipped (at most 63) are written once, and come back when the buffer is reclaimed.
fn align(buf: &mut BytesMut) {
    const LINE: usize = 64;
    if !buf.is_empty() {
        return;
    }
    let skip = buf.as_ptr().align_offset(LINE);
    if skip == 0 || skip >= LINE || buf.capacity() < skip + LINE {
        return;
    }
    buf.resize(skip, 0);
    bytes::Buf::advance(buf, skip);
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
    std::future::poll_fn(|cx| reader.poll_read(cx, buf, limit)).await
}

/// A read buffer's memory, pooled apart from the staging buffers: only buffers of a read
/// buffer's usual size are given back to it, so that one lent never holds more than that
/// while its connection waits for input.
#[derive(Default)]
pub(super) struct ReadMemory(Vec<u8>);

lend!(ReadMemory, |memory| memory.0.capacity(), |memory| memory
    .0
    .clear());
lend!(Vec<Incoming>);

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Every read into an empty buffer lands on a cache line: a fresh buffer, one reclaimed
    /// after a payload split off it was dropped, one left behind a payload still held, and
    /// one grown for a full-size read. A buffer holding part of a frame is not moved.
    #[test]
    fn reads_into_an_empty_buffer_start_on_a_cache_line() {
        let aligned = |buf: &BytesMut| buf.as_ptr().align_offset(64) == 0;
        let mut buf = BytesMut::new();
        make_room(&mut buf, 0, 4096);
        assert!(aligned(&buf) && buf.capacity() >= 4096 - 64);
        for len in [14, 100, 1000, 4000] {
            buf.extend_from_slice(&vec![1; len]);
            let payload = buf.split_to(len);
            make_room(&mut buf, 0, 4096);
            assert!(aligned(&buf), "behind a held payload of {len} bytes");
            drop(payload);
            make_room(&mut buf, 0, 4096);
            assert!(aligned(&buf), "reclaimed after a payload of {len} bytes");
        }
        // Nearly full, behind a payload: a new allocation for a full-size read.
        buf.extend_from_slice(&vec![3; buf.capacity() - 500]);
        let held = buf.split();
        make_room(&mut buf, 0, MAX_READ);
        assert!(aligned(&buf) && buf.capacity() >= MAX_READ - 64);
        drop(held);
        buf.extend_from_slice(&[2; 10]);
        let start = buf.as_ptr();
        make_room(&mut buf, 20, 4096);
        assert_eq!(buf.as_ptr(), start, "part of a frame stays where it is");
    }
}
