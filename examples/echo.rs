//! Echoes every text and binary message back to its sender: the server the Autobahn
//! `TestSuite` runs against.
//!
//! `cargo run --release --example echo -- --addr 127.0.0.1:9001`
//!
//! With `--broadcast` it relays every message unchanged to all *other* clients through the
//! `Endpoint` instead (the fan-out server of the benchmark). With `--redis URL` (feature
//! `redis`) it is one node of a cluster on that Redis: a broadcast reaches the other clients
//! of every node (`--features redis -- --broadcast --redis redis://127.0.0.1:6379`).
//!
//! With `--pair` (for the benchmark's point-to-point rows) each client first gets its own id
//! (`NODE-NUMBER`) as a text message, and a text message `@ID rest` is sent as `rest` to the
//! client `ID`, on this node or, in a cluster, on another; every other message is handled as
//! without `--pair`. Without `--pair` nothing is sent on open.
//!
//! With `--room` (for the benchmark's history rows) every client joins the room `all` on open,
//! and a message is delivered to the room's other members
//! (`Recipients::room("all").excluding([sender])`), on this node or, in a cluster, on every
//! node. With `--history N` (which implies `--room`) the room keeps its last `N` messages
//! (none older than an hour) and each reaches its members as a binary message: the
//! message's offset in the room (8 bytes, big-endian), the length of the history's epoch (1
//! byte), the epoch (ASCII), then the message's bytes unchanged. A client that comes back
//! with the position of the last message it got sends the text `#since OFFSET EPOCH`: it
//! leaves the room and joins it again with that position (`Endpoint::join_since`), and gets
//! the messages it missed, in order, then the text `#joined OFFSET EPOCH RECOVERED REPLAYED`
//! (the room's position when it joined, `true` or `false`, how many were replayed), then the
//! live messages; or `#error REASON`. Send `#since` first thing after opening: what the
//! connection got live before it comes again in the replay (drop it by offset), and a message
//! it sends before the `#joined` reply may reach the room before the rejoin is done.
//!
//! With `--deflate` it negotiates permessage-deflate (RFC 7692) with clients that offer it,
//! compressing every non-empty message (threshold 0, so that Autobahn 12.x/13.x see every
//! echo compressed); `--deflate-threshold BYTES` sets another threshold.
//! `--deflate-client-bits N` (8 to 15, implies `--deflate`) sets
//! `Deflate::client_max_window_bits(N)`: unset, browsers' offers are answered
//! `client_max_window_bits=11` and the others get 15 bits; `15` answers every offer with 15
//! bits (the benchmark's wide-window rows).
//!
//! With `--metrics HOST:PORT` (feature `metrics`: `--features metrics -- --metrics
//! 127.0.0.1:9090`) it installs the Prometheus recorder (`metrics-exporter-prometheus`)
//! before the socket starts, runs its upkeep every 5 s, and serves the text at
//! `http://HOST:PORT/metrics`, as `secure_chat --metrics` does; after the `listening` line it
//! prints `echo metrics at http://ADDR/metrics` (the address bound, so port 0 works). Built
//! with the feature but run without `--metrics`, it installs no recorder: `ws-bench metrics`
//! compares the two.
//!
//! Limits are raised for conformance and benchmark runs: 64 MiB messages, 16 MiB frames, any
//! origin, no rate limit, no connection limits.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::time::Duration;

use warp::Filter;
use ws::{
    ClientId, Config, Deflate, Endpoint, History, Message, Origins, Position, Recipients, websocket,
};

#[path = "support/prometheus.rs"]
mod prometheus;

/// The room of `--room`.
const ROOM: &str = "all";

#[derive(Default)]
struct Echo {
    broadcast: bool,
    pair: bool,
    /// `--room`, `--history N`.
    room: Option<Room>,
}

/// What the room `all` is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Room {
    /// `--room`: messages go to its members as they are.
    Plain,
    /// `--history N`: it keeps its last messages, and a client can rejoin with `#since`.
    History,
}

#[websocket]
impl Echo {
    fn on_open(&self, endpoint: &Endpoint, id: ClientId) {
        if self.pair {
            // A failed send means the client is already closing; nothing to do.
            let _ = endpoint.send(id, Message::text(id.to_string()));
        }
        if self.room.is_some() {
            // It fails only if the client is already closing.
            let _ = endpoint.join(id, ROOM);
        }
    }

    fn on_data(&self, endpoint: &Endpoint, id: ClientId, msg: Message) {
        if let Some((to, rest)) = self.pair.then(|| addressed(&msg)).flatten() {
            // An unknown or departed client: the message is dropped, as a chat would.
            let _ = endpoint.send(to, Message::text(rest.to_owned()));
        } else if let Some(room) = self.room {
            match (room == Room::History).then(|| since(&msg)).flatten() {
                Some(Ok(since)) => rejoin(endpoint.clone(), id, since),
                Some(Err(())) => {
                    let _ = endpoint.send(id, Message::text("#error usage: #since OFFSET EPOCH"));
                }
                None => {
                    endpoint.deliver(Recipients::room(ROOM).excluding([id]), msg);
                }
            }
        } else if self.broadcast {
            endpoint.deliver(Recipients::except([id]), msg);
        } else {
            // A failed send means the client is already closing; nothing to do.
            let _ = endpoint.send(id, msg);
        }
    }
}

/// The position of a text message `#since OFFSET EPOCH` (`Err` if it is malformed), or `None`
/// for any other message.
fn since(msg: &Message) -> Option<Result<Position, ()>> {
    let rest = msg.as_text()?.strip_prefix("#since ")?;
    let parsed = rest
        .trim()
        .split_once(' ')
        .and_then(|(offset, epoch)| Some(Position::new(offset.parse().ok()?, epoch.parse().ok()?)));
    Some(parsed.ok_or(()))
}

/// `#since`: the client leaves the room and joins it again with its position, getting what it
/// missed, then `#joined ...`. A task of its own, since a join in a cluster waits for the
/// store; the hooks stay plain functions, as the other modes have them.
fn rejoin(endpoint: Endpoint, id: ClientId, since: Position) {
    tokio::spawn(async move {
        endpoint.leave(id, ROOM);
        let joined = endpoint
            .join_since(id, ROOM, Some(since))
            .then_send(|r| {
                let at = r.position;
                Some(Message::text(format!(
                    "#joined {} {} {} {}",
                    at.offset, at.epoch, r.recovered, r.replayed
                )))
            })
            .await;
        if let Err(err) = joined {
            let _ = endpoint.send(id, Message::text(format!("#error {err}")));
        }
    });
}

/// `--history N`: the room keeps its last `keep` messages for an hour, each written to its
/// members as offset (8 bytes, big-endian), epoch length (1 byte), epoch, message.
fn history(keep: usize) -> History {
    History::new(keep, Duration::from_secs(3600)).format(|_room, at, message| {
        let epoch = at.epoch.as_str().as_bytes();
        let bytes = message.as_bytes();
        let mut out = Vec::with_capacity(9 + epoch.len() + bytes.len());
        out.extend_from_slice(&at.offset.to_be_bytes());
        // An epoch is at most 32 bytes.
        out.push(u8::try_from(epoch.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(epoch);
        out.extend_from_slice(bytes);
        Message::binary(out)
    })
}

/// The client and the rest of a text message `@NODE-NUMBER rest`.
fn addressed(msg: &Message) -> Option<(ClientId, &str)> {
    let (to, rest) = msg.as_text()?.strip_prefix('@')?.split_once(' ')?;
    Some((to.parse().ok()?, rest))
}

/// Logs warnings and errors (or what `RUST_LOG` asks for).
fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        // Colours only on a terminal: redirected to a file, the log stays plain text.
        .with_ansi(std::io::stdout().is_terminal())
        .init();
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    init_tracing();
    let mut addr = "127.0.0.1:9001".to_owned();
    let mut broadcast = false;
    let mut pair = false;
    let mut room = false;
    let mut keep: Option<usize> = None;
    let mut deflate: Option<usize> = None;
    let mut client_bits: Option<u8> = None;
    let mut redis: Option<String> = None;
    let mut metrics: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--broadcast" => broadcast = true,
            "--pair" => pair = true,
            "--room" => room = true,
            "--history" => match args.next().and_then(|v| v.parse().ok()) {
                Some(n) => keep = Some(n),
                None => return usage(),
            },
            "--deflate" => deflate = Some(deflate.unwrap_or(0)),
            "--deflate-threshold" => match args.next().and_then(|v| v.parse().ok()) {
                Some(bytes) => deflate = Some(bytes),
                None => return usage(),
            },
            "--deflate-client-bits" => match args.next().and_then(|v| v.parse().ok()) {
                Some(bits @ 8..=15) => client_bits = Some(bits),
                _ => return usage(),
            },
            "--addr" => match args.next() {
                Some(value) => addr = value,
                None => return usage(),
            },
            "--redis" => match args.next() {
                Some(value) => redis = Some(value),
                None => return usage(),
            },
            "--metrics" => match args.next() {
                Some(value) => metrics = Some(value),
                None => return usage(),
            },
            _ => return usage(),
        }
    }
    let mut config = limits_raised().deflate(deflate_settings(deflate, client_bits));
    if let Some(keep) = keep {
        config = config.history(Some(history(keep)));
    }
    if let Some(url) = redis {
        match cluster_on(&url) {
            Ok(cluster) => config = config.cluster(cluster),
            Err(err) => {
                eprintln!("echo: --redis {url}: {err}");
                return std::process::ExitCode::from(2);
            }
        }
    }
    // Before the socket starts: a socket registers its metrics when it starts.
    let metrics_at = match serve_metrics(metrics.as_deref()).await {
        Ok(at) => at,
        Err(msg) => {
            eprintln!("echo: {msg}");
            return std::process::ExitCode::from(2);
        }
    };
    let echo = ws::Socket::with_config(
        Echo {
            broadcast,
            pair,
            room: match (room, keep) {
                (_, Some(_)) => Some(Room::History),
                (true, None) => Some(Room::Plain),
                (false, None) => None,
            },
        },
        config,
    );
    let routes = warp::path::end().and(echo.filter());
    let server = match ws::serve(routes).socket(&echo).bind(addr.as_str()).await {
        Ok(server) => server,
        Err(err) => {
            eprintln!("echo: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("echo listening on ws://{}/", server.local_addr());
    if let Some(at) = metrics_at {
        // The second line: the benchmark reads the first for the socket, this one to scrape.
        println!("echo metrics at http://{at}/metrics");
    }
    match server.run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("echo: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Conformance and benchmark runs push far past the production defaults.
fn limits_raised() -> Config {
    Config::new()
        .max_message_size(64 << 20)
        .max_frame_size(16 << 20)
        .origins(Origins::Any)
        .rate_limit(None)
        .max_connections(None)
        .max_connections_per_ip(None)
}

/// `--deflate`, `--deflate-threshold BYTES` (`threshold`), `--deflate-client-bits N`
/// (`client_bits`, which implies `--deflate`); `None` (deflate off) without any of them.
fn deflate_settings(threshold: Option<usize>, client_bits: Option<u8>) -> Option<Deflate> {
    let deflate = Deflate::new().threshold(threshold.or(client_bits.map(|_| 0))?);
    Some(match client_bits {
        Some(bits) => deflate.client_max_window_bits(bits),
        None => deflate,
    })
}

/// `--metrics ADDR`: the Prometheus recorder and its `/metrics` page; the address bound.
/// Without `--metrics`, does nothing.
async fn serve_metrics(addr: Option<&str>) -> Result<Option<SocketAddr>, String> {
    match addr {
        Some(addr) => prometheus::serve(addr, "echo").await.map(Some),
        None => Ok(None),
    }
}

#[cfg(feature = "redis")]
fn cluster_on(url: &str) -> Result<ws::Cluster, String> {
    ws::Cluster::redis(url).map_err(|err| err.to_string())
}

#[cfg(not(feature = "redis"))]
fn cluster_on(_url: &str) -> Result<ws::Cluster, String> {
    Err("build with --features redis".into())
}

fn usage() -> std::process::ExitCode {
    eprintln!(
        "usage: echo [--addr HOST:PORT] [--broadcast] [--pair] [--room] [--history N] [--deflate] \
         [--deflate-threshold BYTES] [--deflate-client-bits 8-15] [--redis URL] [--metrics HOST:PORT]"
    );
    std::process::ExitCode::from(2)
}
