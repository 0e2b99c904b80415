//! One connection's task, from the completed upgrade to `on_close`. Three loops run side by
//! side in it ([`join3`]): the reader (`read.rs`) decodes what the peer sends and hands
//! messages to the handler loop (`dispatch.rs`, where `on_open` and `on_data` are called),
//! whose replies and every [`Endpoint`](crate::Endpoint) send reach the writer (`write.rs`)
//! through the client's send queue. The close handshake is one state machine (`close.rs`);
//! the heartbeat (`heartbeat.rs`) and the rate limit (`throttle.rs`) have a file each.
//!
//! What the loops share, and who does what with it:
//!
//! | shared | kind | set or filled by | waited on or taken by | means |
//! | --- | --- | --- | --- | --- |
//! | `inbox` | queue of `Incoming` | reader | handler loop | messages and streams to handle, in order, and the close of a protocol failure after them (the handler queues it behind its replies); closed by the reader at its end, and by the handler loop when it stops taking |
//! | `client.queue` | queue of `Outgoing` | endpoint (hooks, other tasks), `Client::close` | writer | frames to send, and a close to send after them; closed by the writer at its end |
//! | `client.queue`'s sink | the plain TCP socket (`Direct`), lent by `run` without permessage-deflate | — | a hook's deliveries (`Client::push_direct`) while the writer is idle: nothing queued, nothing taken and unsettled, no hold | a small frame written by the publisher, the rest of a partial write queued first (`OutFrame::rest`); the writer holds around its control frames and its close; gone with the queue's close |
//! | `client.handles_last` | flag | handler loop, around `on_open` and `on_data` | endpoint, through the thread's current client | the hook handles the last message read so far: its deliveries may be written directly |
//! | `client.urgent` + `urgent_notify` | slot + signal | `Client::close_urgently` (peer's close, hook failure, slow consumer, a protocol failure whose replies take longer than the close timeout), `CloseHandshake::reader_done`, owed pongs | writer | a close to send ahead of the queue; the reader's end; pongs to send |
//! | `client.close_wanted` | signal | `Client::close_urgently` | writer stuck in a write | give up on that write within the close timeout |
//! | `client.idle` | signal | writer, at a heartbeat ping | reader | idle for an interval: give back the read buffer |
//! | `close` ([`CloseHandshake`](close::CloseHandshake)) | state machine + signal | reader and writer | reader | the phase of the close handshake, and the close that ended the connection |
//! | `pong` (`Pongs`) | list | reader | writer | pongs owed for pings read |
//! | `client.closing` | flag | `Client::close`, `Client::close_urgently` | endpoint, reader | no more sends; data read after it is dropped |
//! | `client.reader_paused`, `client.throttled` | flags | reader | writer's heartbeat | reading is held back by the server itself: the peer's silence is not a miss |
//! | `client.stats` | counters | reader, writer | `Endpoint::info`, heartbeat | bytes, frames, messages, last read and send |

mod close;
mod dispatch;
mod gather;
mod heartbeat;
mod read;
mod throttle;
mod write;

use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{BufMut, BytesMut};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadHalf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::Instrument;
use warp::hyper::upgrade::{OnUpgrade, Upgraded};

pub(crate) use dispatch::{Hook, guard};

use self::close::CloseHandshake;
use self::dispatch::handle_loop;
use self::read::{Input, read_loop};
use self::throttle::Throttle;
use self::write::{Pongs, write_frames, write_loop};
use crate::config::Config;
use crate::endpoint::{Client, Direct, Endpoint, Identity};
use crate::handler::{DataParam, Handler};
use crate::message::Close;
use crate::proto::OutFrame;
use crate::proto::deflate::Negotiated;
use crate::rt::join::join3;
use crate::rt::queue::{Queue, Weighted};
use crate::rt::tcp::{self, TcpWriter};
use crate::stream::Incoming;

/// Bytes inflated (or, in the writer, compressed) between two yields to other connections:
/// a client's compression work, however cheap on the wire, is done in slices of this, and
/// one message's at most (the message limit bounds it) before others run.
const WORK_SLICE: u64 = 256 << 10;

/// Messages read ahead of `on_data`: enough that a full read of small messages (64 KiB of
/// 64-byte messages) is handled and answered in one write.
const INBOX: usize = 1024;

/// Bytes of messages read ahead of `on_data`. A message larger than this waits until the
/// handler has taken every earlier one, so a connection never holds more than this much read
/// ahead, besides the message being handled, what the handler has taken out to handle next,
/// and the messages decoded from one read that wait for room (at most the read buffer's
/// worth).
const INBOX_BYTES: usize = 256 << 10;

/// What every connection of one socket shares: the handler, its configuration and endpoint.
pub(crate) struct Service<H> {
    pub(crate) handler: H,
    pub(crate) config: Config,
    pub(crate) endpoint: Endpoint,
}

/// Runs one accepted connection from the completed upgrade to `on_close`. `admission` is held
/// until the task ends (the connection's place in the server's limits).
pub(crate) async fn run<H: Handler, A: Send>(
    socket: Arc<Service<H>>,
    on_upgrade: OnUpgrade,
    mut session: H::Session,
    remote_addr: SocketAddr,
    identity: Option<Box<Identity>>,
    deflate: Option<Negotiated>,
    admission: A,
) {
    let _admission = admission;
    // In a block of its own, the upgraded connection takes no room in the task once split.
    let (client, halves) = {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(err) => {
                tracing::debug!(peer = %remote_addr, "upgrade failed: {err}");
                return;
            }
        };
        let Some(client) = socket.endpoint.register(remote_addr, identity) else {
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
    let span = tracing::info_span!("ws", client = %client.id, peer = %remote_addr);
    let deflate = deflate.as_ref();
    async {
        tracing::debug!("open");
        let close = match halves {
            Halves::Tcp(stream, buf) => {
                let writer = TcpWriter(stream.clone());
                // Deliveries may be written from the publisher while the writer is idle: not
                // when each frame must be compressed by the writer's context.
                if deflate.is_none() {
                    let direct = Direct::new(stream.clone(), socket.config.send_frame_size);
                    client.queue.lend_sink(direct);
                }
                let reader = TcpReader(stream);
                drive(&socket, &client, &mut session, reader, writer, buf, deflate).await
            }
            Halves::Other(reader, writer) => {
                let buf = BytesMut::new();
                drive(&socket, &client, &mut session, reader, writer, buf, deflate).await
            }
        };
        socket.endpoint.unregister(client.id, close.code);
        tracing::debug!(code = close.code, reason = %close.reason, "closed");
        let _ = guard(
            Hook::Close,
            socket
                .handler
                .on_close(&socket.endpoint, client.id, session, close),
        )
        .await;
    }
    .instrument(span)
    .await;
}

/// The two halves of an upgraded connection.
enum Halves {
    /// Plain TCP: the socket, shared by the reader, the writer and direct writes (see
    /// [`Direct`]), no lock between them; and what hyper read past the request, the first
    /// bytes to decode.
    Tcp(Arc<TcpStream>, BytesMut),
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
                let stream = Arc::new(parts.io.into_inner());
                // A copy: the bytes may be a slice of hyper's whole read buffer, which then
                // goes now, not when the connection ends.
                Halves::Tcp(stream, BytesMut::from(&parts.read_buf[..]))
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
    socket: &Service<H>,
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
    let close = CloseHandshake::new();
    let pong = Pongs::default();
    let inbox = Queue::new(INBOX, INBOX_BYTES).keeping(config.queue_keep());
    let shared = Shared {
        client,
        close: &close,
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
        let handling = std::pin::pin!(handle_loop(
            &socket.handler,
            &socket.endpoint,
            client,
            session,
            &inbox,
        ));
        // Its hooks' sends to this client skip the registry.
        let handling = std::pin::pin!(socket.endpoint.as_current(client.clone(), handling));
        let writing = std::pin::pin!(write_loop(writer, &shared));
        join3(reading, handling, writing).await;
    }
    close.into_close()
}

/// What the reader and the writer of one connection share (see the table above).
struct Shared<'a> {
    client: &'a Client,
    close: &'a CloseHandshake,
    pong: &'a Pongs,
    config: &'a Config,
    /// What permessage-deflate agreement there is with this client.
    deflate: Option<&'a Negotiated>,
    /// The handler takes fragmented messages as streams.
    streams: bool,
    /// What the reader hands to the handler.
    inbox: &'a Queue<Incoming>,
}

/// Closes a queue when dropped.
struct CloseOnDrop<'a, T: Weighted, S = ()>(&'a Queue<T, S>);

impl<T: Weighted, S> Drop for CloseOnDrop<'_, T, S> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// A connection's read half.
trait Source: Unpin {
    /// Whether [`poll_ready`](Source::poll_ready) waits for input, so that reading can wait
    /// without a buffer.
    const WAITS: bool;

    /// Ready once input, the end of the stream or an error can be read.
    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>>;

    /// Reads into `buf`'s spare capacity, at most `limit` bytes: `Ok(0)` at the end of the
    /// stream, or for a limit of 0.
    fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
        limit: usize,
    ) -> Poll<std::io::Result<usize>>;
}

/// Plain TCP's read side: the socket's readiness, polled through its read waker slot (the
/// one reads use; waiting replaces the waker hyper's finished connection task left there,
/// which kept that task's memory alive). `readable()` would wait with a waiter node in the
/// reader's state.
struct TcpReader(Arc<TcpStream>);

impl Source for TcpReader {
    const WAITS: bool = true;

    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.0.poll_read_ready(cx)
    }

    fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
        limit: usize,
    ) -> Poll<std::io::Result<usize>> {
        tcp::poll_read_buf(&self.0, cx, &mut buf.limit(limit))
    }
}

/// TLS or another upgraded stream: no readiness to wait on, reading needs its buffer.
impl<T: AsyncRead + AsyncWrite + Send> Source for ReadHalf<T> {
    const WAITS: bool = false;

    fn poll_ready(&self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
        limit: usize,
    ) -> Poll<std::io::Result<usize>> {
        tokio_util::io::poll_read_buf(std::pin::Pin::new(self), cx, &mut buf.limit(limit))
    }
}

/// Waits until `deadline`, forever without one. The timer is boxed: a deadline exists only
/// for a moment (a close handshake, a throttled read), and inline the timer would be part of
/// every connection's waiting reader.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => Box::pin(tokio::time::sleep_until(deadline)).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::{Accept, Reject, Request};
    use crate::message::Message;

    /// A handler with no hooks (the macro's expansion for an empty impl block).
    struct Nothing;

    impl Handler for Nothing {
        type Session = ();
        type Message = Message;

        async fn on_handshake(
            &self,
            _: &Endpoint,
            _: &Request,
            _: &mut Accept,
        ) -> Result<(), Reject> {
            Ok(())
        }
    }

    /// Bytes of one connection's task, as spawned: most of the memory of an idle connection
    /// (`BENCHMARKS.md` measures the whole). Raise it only with a reason: every idle
    /// connection pays for each byte. The last raise, 2,232 to 2,272: the rate limit's clock
    /// of inflated bytes (16), the decoder's UTF-8 check of a frame arriving in pieces (8),
    /// and the reader's pause between frames and its slices of inflating (16).
    const TASK_BYTES: usize = 2_272;

    /// The connection's task stays as small as measured: rare paths are boxed, the futures
    /// are pinned where they are made rather than held twice.
    #[test]
    fn a_connections_task_stays_small() {
        let config = Config::default();
        let endpoint = Endpoint::new(&config);
        let service = Arc::new(Service {
            handler: Nothing,
            config,
            endpoint,
        });
        let on_upgrade = warp::hyper::upgrade::on(http::Request::new(()));
        let task = run(
            service,
            on_upgrade,
            (),
            SocketAddr::from(([127, 0, 0, 1], 1)),
            None,
            None,
            (),
        );
        let size = size_of_val(&task);
        assert!(size <= TASK_BYTES, "{size} bytes");
    }
}
