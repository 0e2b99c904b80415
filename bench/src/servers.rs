//! The bench-only echo servers. Each runs in its own process (`ws-bench serve KIND`), binds
//! `127.0.0.1:0`, prints one line `KIND listening on ws://ADDR/PATH` and echoes until killed.
//!
//! Every server uses `#[tokio::main]`'s multi-thread runtime, as `examples/echo` does: pinned to
//! one CPU, that is one worker thread each.

use std::collections::HashMap;
use std::future::ready;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use fastwebsockets::{OpCode, WebSocketError};
use futures_util::SinkExt;
use futures_util::{FutureExt, StreamExt, TryStreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{RwLock, mpsc};
use warp::Filter;

/// One implementation under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Raw TCP echo: the floor.
    Tcp,
    /// `warp::ws`, written as warp's own `websockets` example does.
    Warp,
    /// tokio-tungstenite 0.30 with its default config (128 KiB read buffer).
    Tungstenite,
    /// tokio-tungstenite 0.30 with a 4 KiB read buffer.
    Tungstenite4k,
    /// tokio-websockets, the fast peer.
    TokioWebsockets,
    /// fastwebsockets (Deno's codec) behind hyper 1's upgrade, as its `echo_server` example.
    FastWebsockets,
    /// Ours: the release `examples/echo` binary.
    Ours,
    /// Another build of ours (`--baseline BIN`, an `examples/echo` built from an older
    /// commit), so that a change is measured against its baseline within one round.
    OursBaseline,
    /// Ours relaying to every other client: `examples/echo --broadcast`.
    OursBroadcast,
    /// Ours with permessage-deflate on, every message compressed: `examples/echo --deflate`.
    OursDeflate,
    /// Ours with permessage-deflate and every client's window at 15 bits (32 KiB kept per idle
    /// connection with client context takeover): `examples/echo --deflate-client-bits 15`.
    OursDeflate15,
    /// Ours built with the feature `metrics`, no recorder installed: `examples/echo` (the
    /// `--ours-metrics` binary) without `--metrics`.
    OursFeature,
    /// Ours built with the feature `metrics` and the Prometheus recorder installed:
    /// `examples/echo --metrics 127.0.0.1:0`.
    OursPrometheus,
    /// [`Kind::OursFeature`] relaying: `examples/echo --broadcast`.
    OursBroadcastFeature,
    /// [`Kind::OursPrometheus`] relaying: `examples/echo --broadcast --metrics 127.0.0.1:0`.
    OursBroadcastPrometheus,
    /// `warp::ws` relaying to every other client the way warp's `chat` example does: a shared
    /// `HashMap<usize, mpsc::UnboundedSender<Message>>` behind a `RwLock`, one forwarding task
    /// per user.
    WarpChat,
    /// Raw TCP fan-out, the floor of `ws-bench scale`: whatever is read from one connection is
    /// written as read to every other one by a single relay task (`scale::serve_tcp_fanout`).
    TcpFanout,
}

impl Kind {
    /// Every kind, in the order the tables list them.
    pub(crate) const ALL: [Kind; 7] = [
        Kind::Ours,
        Kind::Warp,
        Kind::Tungstenite,
        Kind::Tungstenite4k,
        Kind::TokioWebsockets,
        Kind::FastWebsockets,
        Kind::Tcp,
    ];

    /// The broadcast (fan-out) servers, in the order the tables list them.
    pub(crate) const BROADCAST: [Kind; 2] = [Kind::OursBroadcast, Kind::WarpChat];

    /// The baseline build, run only when named (`--only ours,ours-baseline`).
    pub(crate) const BASELINE: [Kind; 1] = [Kind::OursBaseline];

    /// The server that only the permessage-deflate tables run.
    pub(crate) const DEFLATE: [Kind; 2] = [Kind::OursDeflate, Kind::OursDeflate15];

    /// The servers of `ws-bench metrics`, in the order its tables list them: echo, then
    /// broadcast.
    pub(crate) const METRICS: [Kind; 4] = [
        Kind::OursFeature,
        Kind::OursPrometheus,
        Kind::OursBroadcastFeature,
        Kind::OursBroadcastPrometheus,
    ];

    /// The name used on the command line and in the tables.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Tcp => "tcp-floor",
            Kind::Warp => "warp-ws",
            Kind::Tungstenite => "tungstenite",
            Kind::Tungstenite4k => "tungstenite-4k",
            Kind::TokioWebsockets => "tokio-websockets",
            Kind::FastWebsockets => "fastwebsockets",
            Kind::Ours => "ours",
            Kind::OursBaseline => "ours-baseline",
            Kind::OursBroadcast => "ours-broadcast",
            Kind::OursDeflate => "ours-deflate",
            Kind::OursDeflate15 => "ours-deflate-15",
            Kind::OursFeature => "ours-feature",
            Kind::OursPrometheus => "ours-prometheus",
            Kind::OursBroadcastFeature => "ours-broadcast-feature",
            Kind::OursBroadcastPrometheus => "ours-broadcast-prometheus",
            Kind::WarpChat => "warp-chat",
            Kind::TcpFanout => "tcp-fanout",
        }
    }

    /// A longer label for the tables.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Kind::Tcp => "TCP echo (floor)",
            Kind::Warp => "raw warp::ws 0.4.3",
            Kind::Tungstenite => "tokio-tungstenite 0.30, default (128 KiB read buf)",
            Kind::Tungstenite4k => "tokio-tungstenite 0.30, 4 KiB read buf",
            Kind::TokioWebsockets => "tokio-websockets 0.13",
            Kind::FastWebsockets => "fastwebsockets 0.10",
            Kind::Ours => "**ours** (examples/echo)",
            Kind::OursBaseline => "ours, baseline build (`--baseline`)",
            Kind::OursBroadcast => "**ours** (examples/echo --broadcast)",
            Kind::OursDeflate => "**ours** (examples/echo --deflate)",
            Kind::OursDeflate15 => "**ours** (examples/echo --deflate-client-bits 15)",
            Kind::OursFeature => "**ours**, feature `metrics`, no recorder (examples/echo)",
            Kind::OursPrometheus => {
                "**ours**, feature `metrics`, Prometheus recorder (examples/echo --metrics)"
            }
            Kind::OursBroadcastFeature => {
                "**ours**, feature `metrics`, no recorder (examples/echo --broadcast)"
            }
            Kind::OursBroadcastPrometheus => {
                "**ours**, feature `metrics`, Prometheus recorder (examples/echo --broadcast --metrics)"
            }
            Kind::WarpChat => "raw warp::ws 0.4.3, chat-example pattern",
            Kind::TcpFanout => "TCP fan-out (floor)",
        }
    }

    /// Parses a name as printed by [`Kind::name`].
    pub(crate) fn parse(name: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .chain(Kind::BASELINE)
            .chain(Kind::BROADCAST)
            .chain(Kind::DEFLATE)
            .chain(Kind::METRICS)
            .chain(crate::scale::KINDS)
            .find(|kind| kind.name() == name)
    }

    /// Whether the client speaks WebSocket to it (everything but the TCP floors).
    pub(crate) fn is_websocket(self) -> bool {
        !matches!(self, Kind::Tcp | Kind::TcpFanout)
    }

    /// Whether it is our echo with the Prometheus recorder (`--metrics`), which serves
    /// `/metrics` on an address of its own.
    pub(crate) fn is_prometheus(self) -> bool {
        matches!(self, Kind::OursPrometheus | Kind::OursBroadcastPrometheus)
    }

    /// Whether it runs the `--ours-metrics` binary (built with the feature `metrics`).
    pub(crate) fn has_feature(self) -> bool {
        matches!(
            self,
            Kind::OursFeature
                | Kind::OursPrometheus
                | Kind::OursBroadcastFeature
                | Kind::OursBroadcastPrometheus
        )
    }
}

/// Runs the server of `kind` in this process until it is killed.
pub(crate) fn serve(kind: Kind) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match kind {
            Kind::Warp => serve_warp().await,
            Kind::Tcp => accept_loop(kind, "", tcp_echo).await,
            Kind::Tungstenite => accept_loop(kind, "", |s| tungstenite_echo(s, 128 * 1024)).await,
            Kind::Tungstenite4k => accept_loop(kind, "", |s| tungstenite_echo(s, 4 * 1024)).await,
            Kind::TokioWebsockets => accept_loop(kind, "", tokio_websockets_echo).await,
            Kind::FastWebsockets => accept_loop(kind, "", fastwebsockets_conn).await,
            Kind::WarpChat => serve_warp_chat().await,
            Kind::TcpFanout => crate::scale::serve_tcp_fanout().await,
            Kind::Ours
            | Kind::OursBaseline
            | Kind::OursBroadcast
            | Kind::OursDeflate
            | Kind::OursDeflate15
            | Kind::OursFeature
            | Kind::OursPrometheus
            | Kind::OursBroadcastFeature
            | Kind::OursBroadcastPrometheus => {
                Err(io::Error::other("`ours` runs target/release/examples/echo"))
            }
        }
    })
}

/// Prints the line `KIND listening on ws://ADDR/PATH` that [`crate::procs::Server::spawn`] waits for.
pub(crate) fn announce(kind: Kind, addr: SocketAddr, path: &str) {
    // The parent reads this line to learn the port; stdout is a pipe, so print and flush.
    println!("{} listening on ws://{addr}/{path}", kind.name());
    let _ = io::Write::flush(&mut io::stdout());
}

/// warp's `examples/websockets.rs`, on 127.0.0.1:0. `warp::serve` does not set `TCP_NODELAY`.
async fn serve_warp() -> io::Result<()> {
    let routes = warp::path("echo").and(warp::ws()).map(|ws: warp::ws::Ws| {
        ws.on_upgrade(|websocket| {
            let (tx, rx) = websocket.split();
            // The example prints the error; every abrupt client close ends here, so the
            // bench drops it instead of writing thousands of lines.
            rx.forward(tx).map(|_result| ())
        })
    });
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    announce(Kind::Warp, listener.local_addr()?, "echo");
    warp::serve(routes).incoming(listener).run().await;
    Ok(())
}

/// The connected users of [`serve_warp_chat`], as warp's `chat` example keeps them.
type Users = Arc<RwLock<HashMap<usize, mpsc::UnboundedSender<warp::ws::Message>>>>;

/// warp's `examples/chat.rs`, on 127.0.0.1:0, with one change: a data message is relayed
/// unchanged (text or binary) instead of being reformatted as `<User#N>: text`, so that it does
/// the same work as `examples/echo --broadcast`.
async fn serve_warp_chat() -> io::Result<()> {
    let users = Users::default();
    let users = warp::any().map(move || users.clone());
    let routes =
        warp::path("chat")
            .and(warp::ws())
            .and(users)
            .map(|ws: warp::ws::Ws, users: Users| {
                ws.on_upgrade(move |socket| chat_user_connected(socket, users))
            });
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    announce(Kind::WarpChat, listener.local_addr()?, "chat");
    warp::serve(routes).incoming(listener).run().await;
    Ok(())
}

async fn chat_user_connected(ws: warp::ws::WebSocket, users: Users) {
    static NEXT_USER_ID: AtomicUsize = AtomicUsize::new(1);
    let my_id = NEXT_USER_ID.fetch_add(1, Ordering::Relaxed);
    let (mut user_ws_tx, mut user_ws_rx) = ws.split();
    // The example's unbounded queue and forwarding task per user.
    let (tx, mut rx) = mpsc::unbounded_channel::<warp::ws::Message>();
    tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            if user_ws_tx.send(message).await.is_err() {
                break;
            }
        }
    });
    users.write().await.insert(my_id, tx);
    while let Some(result) = user_ws_rx.next().await {
        let Ok(msg) = result else { break };
        if msg.is_text() || msg.is_binary() {
            for (&uid, tx) in users.read().await.iter() {
                if my_id != uid {
                    // The receiver is gone: its own task removes it.
                    let _ = tx.send(msg.clone());
                }
            }
        }
    }
    users.write().await.remove(&my_id);
}

/// A plain accept loop that sets `TCP_NODELAY` (as ours does) and spawns one task per connection.
async fn accept_loop<F, Fut>(kind: Kind, path: &str, handle: F) -> io::Result<()>
where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    announce(kind, listener.local_addr()?, path);
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(handle(stream));
            }
            // Out of descriptors: back off instead of spinning.
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
}

/// Reads into a 64 KiB buffer (allocated at the first byte, as a read buffer would be) and
/// writes back what it read: two syscalls per read, no framing.
async fn tcp_echo(mut stream: TcpStream) {
    if stream.readable().await.is_err() {
        return;
    }
    // On a cache line: the kernel's copy into a read buffer that is not can take twice as
    // long (see `align` in ws-runtime's conn/read.rs), and the floor is the fastest echo.
    let mut memory = vec![0u8; 64 * 1024 + 64];
    let start = memory.as_ptr().align_offset(64).min(64);
    let buf = &mut memory[start..start + 64 * 1024];
    loop {
        match stream.read(buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn tungstenite_echo(stream: TcpStream, read_buffer_size: usize) {
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(read_buffer_size);
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let (tx, rx) = ws.split();
    let _ = rx
        .try_filter(|msg| ready(msg.is_text() || msg.is_binary()))
        .forward(tx)
        .await;
}

/// The echo loop of tokio-websockets' README: it flushes before each read, so this is as
/// batched as the crate gets.
async fn tokio_websockets_echo(stream: TcpStream) {
    let Ok((_request, mut ws)) = tokio_websockets::ServerBuilder::new().accept(stream).await else {
        return;
    };
    while let Some(Ok(msg)) = ws.next().await {
        if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
            return;
        }
    }
}

/// fastwebsockets' `echo_server` example: one hyper 1 HTTP/1 connection per stream, with
/// upgrades, whose service is [`fastwebsockets_upgrade`].
async fn fastwebsockets_conn(stream: TcpStream) {
    let io = hyper_util::rt::TokioIo::new(stream);
    let service = hyper::service::service_fn(fastwebsockets_upgrade);
    // The example prints the error; every abrupt client close (the handshake runs drop each
    // connection after its `101`) ends here, so the bench drops it.
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, service)
        .with_upgrades()
        .await;
}

/// The example's `server_upgrade`: answers the upgrade request and spawns the echo on the
/// upgraded connection, `unconstrained` as the example runs it (out of tokio's cooperative
/// budget).
async fn fastwebsockets_upgrade(
    mut request: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<http_body_util::Empty<hyper::body::Bytes>>, WebSocketError> {
    let (response, upgraded) = fastwebsockets::upgrade::upgrade(&mut request)?;
    tokio::spawn(async move {
        // The example prints the error; dropped for the reason above.
        let _ = tokio::task::unconstrained(fastwebsockets_echo(upgraded)).await;
    });
    Ok(response)
}

/// The example's `handle_client`: whole messages through `FragmentCollector` (which answers
/// pings and closes itself), each data message written back with `write_frame`.
async fn fastwebsockets_echo(
    upgraded: fastwebsockets::upgrade::UpgradeFut,
) -> Result<(), WebSocketError> {
    let mut ws = fastwebsockets::FragmentCollector::new(upgraded.await?);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => break,
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
    Ok(())
}
