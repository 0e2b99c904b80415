//! The write loop: sends what the send queue holds, gathered into as few writes as possible,
//! compressed per receiver when permessage-deflate was agreed and cut into fragments when
//! large; the pongs the reader owes and the heartbeat's pings; our close frame; and gives up
//! on a peer that reads nothing.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::Poll;

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::close::CloseHandshake;
use super::gather::Gather;
use super::heartbeat::{Beat, Heartbeat, stall};
use super::{CloseOnDrop, Shared, WORK_SLICE};
use crate::config::Config;
use crate::endpoint::{Client, Outgoing};
use crate::message::Close;
use crate::proto::OutFrame;
use crate::proto::deflate::Deflater;
use crate::rt::lend::{Lend, lend};

/// Queued messages the writer takes under one lock of the send queue.
const TAKE_AT_ONCE: usize = 64;

/// Pongs the reader owes the peer, one per ping; beyond a few outstanding, only the latest
/// pings are answered (RFC 6455 §5.5.3 allows answering just the most recent).
#[derive(Debug, Default)]
pub(super) struct Pongs {
    owed: Mutex<VecDeque<Bytes>>,
}

/// Pongs kept waiting at most; a ping flood cannot grow memory.
const MAX_OWED_PONGS: usize = 16;

impl Pongs {
    pub(super) fn owe(&self, payload: Bytes, client: &Client) {
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

/// Writes until the connection is over: data from the send queue, control frames, our close.
pub(super) async fn write_loop<W: AsyncWrite + Unpin>(mut writer: W, shared: &Shared<'_>) {
    let Shared {
        client,
        close: handshake,
        pong,
        config,
        ..
    } = *shared;
    // However it ends, later sends are refused instead of queued for nobody.
    let _done = CloseOnDrop(&client.queue);
    // Boxed: inline, its state would be part of every connection's writer, compressed or not.
    let mut deflater = shared.deflate.cloned().map(|d| Box::new(Deflater::new(d)));
    let mut heartbeat = Heartbeat::new(client);
    // One timer for the heartbeat, reset only when its deadline moves: creating a timer per
    // message would cost a timer-wheel insert and removal on the hot path.
    let mut beat = std::pin::pin!(tokio::time::sleep_until(Heartbeat::next(config)));
    let close = loop {
        let mut control = tokio::select! {
            biased;
            // One wake for everything but data: an urgent close, the reader's end, pongs owed.
            () = client.urgent_notify.wait() => {
                if let Some(close) = client.take_urgent() {
                    break Some(close);
                }
                if handshake.reader_is_done() {
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
                    client.ping_sent();
                    vec![OutFrame::ping(Bytes::new())]
                }
                Beat::Dead => {
                    tracing::debug!("no answer to {} pings; closing with 1008", config.heartbeat_misses);
                    client.meter.heartbeat_timeout();
                    break Some(Close::new(Close::POLICY_VIOLATION, "Heartbeat timeout"));
                }
            }},
            next = client.queue.pop() => match next {
                Some(Outgoing::Message(frame)) => {
                    // Boxed, with its watch: an idle connection's task does not hold a writing
                    // future's state.
                    let written = Box::pin(write_message(&mut writer, frame, deflater.as_deref_mut(), shared));
                    match written.await {
                        Ok(Ok(None)) => {
                            // All written: deliveries may be written directly again.
                            client.queue.settle();
                            continue;
                        }
                        Ok(Ok(Some(close))) => break Some(close),
                        Ok(Err(err)) => {
                            tracing::debug!("write failed: {err}");
                            break None;
                        }
                        Err(close) => {
                            // The peer reads nothing: no close frame could reach it either.
                            tracing::debug!(code = close.code, "the peer is not reading; dropping it");
                            handshake.abort(Some(close));
                            return;
                        }
                    }
                }
                Some(Outgoing::Close(close)) => break Some(close),
                None => break None,
            },
        };
        // The rest of a partial direct write goes first: nothing may come before it.
        if let Some(rest) = client.hold_writes() {
            control.insert(0, rest);
        }
        let sent = Box::pin(async {
            let frames = std::pin::pin!(write_frames(&mut writer, &control));
            write_or_give_up(frames, client, config).await
        })
        .await;
        if !matches!(sent, Ok(Ok(()))) {
            tracing::debug!("control frame not written; dropping the connection");
            handshake.abort(None);
            return;
        }
        client.queue.settle();
        let frames = control.iter().filter(|frame| !frame.is_rest()).count();
        let bytes = control.iter().map(|frame| frame.len() as u64).sum();
        client.wrote(0, frames as u64, bytes);
    };
    if let Some(close) = close {
        Box::pin(send_close(&mut writer, close, shared)).await;
    }
}

/// Writes a message and whatever else is queued, giving up on a peer that reads nothing: what
/// the writer boxes per write. Kept small enough for glibc's per-thread cache (tcache), the box
/// costs a few instructions instead of a trip through the general allocator; a test pins its
/// size.
async fn write_message<W: AsyncWrite + Unpin>(
    writer: &mut W,
    frame: OutFrame,
    deflater: Option<&mut Deflater>,
    shared: &Shared<'_>,
) -> Result<std::io::Result<Option<Close>>, Close> {
    let batch = std::pin::pin!(write_batch(writer, frame, deflater, shared));
    write_or_give_up(batch, shared.client, shared.config).await
}

/// Sends our close frame (or the reply to the peer's), records it, and starts the wait for
/// the peer's reply.
async fn send_close<W: AsyncWrite + Unpin>(writer: &mut W, close: Close, shared: &Shared<'_>) {
    let Shared { client, config, .. } = *shared;
    let close = CloseHandshake::sendable(close);
    let frame = OutFrame::close(&close);
    // Nothing is written directly after it: the writer holds until its end, when the queue
    // closes. The rest of a partial direct write goes first.
    let frames: Vec<OutFrame> = client.hold_writes().into_iter().chain([frame]).collect();
    let written = tokio::time::timeout(config.close_timeout, write_frames(writer, &frames)).await;
    let bytes = frames.iter().map(|frame| frame.len() as u64).sum();
    match written {
        Ok(Ok(())) => client.wrote(0, 1, bytes),
        Ok(Err(err)) => tracing::debug!("sending close failed: {err}"),
        Err(_) => tracing::debug!("close frame not written within the close timeout"),
    }
    shared.close.sent(close);
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
pub(super) async fn write_frames<W: AsyncWrite + Unpin>(
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
    // Compressing ends the batch after a slice of work, however small the compressed bytes
    // are on the wire: other connections' tasks run, then owed pongs go out first.
    let slice = deflater.as_deref().map(|d| d.deflated / WORK_SLICE);
    let mut yield_after = false;
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
            // The rest of a partial direct write (first in its batch: queued only while the
            // writer was idle), as it is: counted as a frame and a message when its start was
            // written.
            Outgoing::Message(rest) if rest.is_rest() => {
                bytes += rest.len() as u64;
                gather.push(rest);
                continue;
            }
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
            // its whole state per message, a visible cost of a burst of small ones.
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
        // Only between two takes from the queue: what was taken is this batch's to write.
        if taken.is_empty() && deflater.as_deref().map(|d| d.deflated / WORK_SLICE) != slice {
            yield_after = true;
            break;
        }
        if gather.is_full(batch_limit) {
            gather.write(writer).await?;
        }
    }
    Lend::give_back(&mut taken);
    gather.write(writer).await?;
    writer.flush().await?;
    client.wrote(messages, frames, bytes);
    if yield_after && close.is_none() {
        tokio::task::yield_now().await;
    }
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
    // each write; kept small enough for glibc's per-thread cache (tcache), that box costs a
    // few instructions instead of a trip through the general allocator (a `size_of` test in
    // `conn` keeps it there).
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

lend!(VecDeque<Outgoing>);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use crate::rt::queue::Queue;

    /// The largest chunk glibc's per-thread cache (tcache) serves on 64-bit Linux, less the
    /// chunk header: a box up to this size is a few instructions to allocate and free.
    const TCACHE_MAX: usize = 1032 - 8;

    /// The future the writer boxes per write stays within glibc's per-thread cache.
    #[tokio::test]
    async fn a_write_fits_the_allocators_thread_cache() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tcp = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (_reader, mut writer) = tcp.into_split();
        let config = Config::default();
        let endpoint = crate::endpoint::Endpoint::new(&config);
        let client = endpoint
            .register(std::net::SocketAddr::from(([127, 0, 0, 1], 1)), None)
            .unwrap();
        let (close, pong, inbox) = (CloseHandshake::new(), Pongs::default(), Queue::new(1, 1));
        let shared = Shared {
            client: &client,
            close: &close,
            pong: &pong,
            config: &config,
            deflate: None,
            streams: false,
            inbox: &inbox,
        };
        let frame = OutFrame::message(Message::text("x"), usize::MAX);
        let write = write_message(&mut writer, frame, None, &shared);
        let size = size_of_val(&write);
        assert!(size <= TCACHE_MAX, "{size} bytes");
    }
}
