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
//! With `--deflate` it negotiates permessage-deflate (RFC 7692) with clients that offer it,
//! compressing every non-empty message (threshold 0, so that Autobahn 12.x/13.x see every
//! echo compressed); `--deflate-threshold BYTES` sets another threshold.
//!
//! Limits are raised for conformance and benchmark runs: 64 MiB messages, 16 MiB frames, any
//! origin, no rate limit, no connection limits.

use std::io::IsTerminal;

use warp::Filter;
use ws::{ClientId, Config, Deflate, Endpoint, Message, Origins, Recipients, websocket};

#[derive(Default)]
struct Echo {
    broadcast: bool,
    pair: bool,
}

#[websocket]
impl Echo {
    fn on_open(&self, endpoint: &Endpoint, id: ClientId) {
        if self.pair {
            // A failed send means the client is already closing; nothing to do.
            let _ = endpoint.send(id, Message::text(id.to_string()));
        }
    }

    fn on_data(&self, endpoint: &Endpoint, id: ClientId, msg: Message) {
        if let Some((to, rest)) = self.pair.then(|| addressed(&msg)).flatten() {
            // An unknown or departed client: the message is dropped, as a chat would.
            let _ = endpoint.send(to, Message::text(rest.to_owned()));
        } else if self.broadcast {
            endpoint.deliver(Recipients::except([id]), msg);
        } else {
            // A failed send means the client is already closing; nothing to do.
            let _ = endpoint.send(id, msg);
        }
    }
}

/// The client and the rest of a text message `@NODE-NUMBER rest`.
fn addressed(msg: &Message) -> Option<(ClientId, &str)> {
    let (to, rest) = msg.as_text()?.strip_prefix('@')?.split_once(' ')?;
    Some((to.parse().ok()?, rest))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        // Colours only on a terminal: redirected to a file, the log stays plain text.
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    let mut addr = "127.0.0.1:9001".to_owned();
    let mut broadcast = false;
    let mut pair = false;
    let mut deflate: Option<usize> = None;
    let mut redis: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--broadcast" => broadcast = true,
            "--pair" => pair = true,
            "--deflate" => deflate = Some(deflate.unwrap_or(0)),
            "--deflate-threshold" => match args.next().and_then(|v| v.parse().ok()) {
                Some(bytes) => deflate = Some(bytes),
                None => return usage(),
            },
            "--addr" => match args.next() {
                Some(value) => addr = value,
                None => return usage(),
            },
            "--redis" => match args.next() {
                Some(value) => redis = Some(value),
                None => return usage(),
            },
            _ => return usage(),
        }
    }
    // Conformance and benchmark runs push far past the production defaults.
    let mut config = Config::new()
        .max_message_size(64 << 20)
        .max_frame_size(16 << 20)
        .origins(Origins::Any)
        .rate_limit(None)
        .max_connections(None)
        .max_connections_per_ip(None)
        .deflate(deflate.map(|threshold| Deflate::new().threshold(threshold)));
    if let Some(url) = redis {
        match cluster_on(&url) {
            Ok(cluster) => config = config.cluster(cluster),
            Err(err) => {
                eprintln!("echo: --redis {url}: {err}");
                return std::process::ExitCode::from(2);
            }
        }
    }
    let echo = ws::Socket::with_config(Echo { broadcast, pair }, config);
    let routes = warp::path::end().and(echo.filter());
    let server = match ws::serve(routes).socket(&echo).bind(addr.as_str()).await {
        Ok(server) => server,
        Err(err) => {
            eprintln!("echo: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("echo listening on ws://{}/", server.local_addr());
    match server.run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("echo: {err}");
            std::process::ExitCode::FAILURE
        }
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
        "usage: echo [--addr HOST:PORT] [--broadcast] [--pair] [--deflate] [--deflate-threshold BYTES] \
         [--redis URL]"
    );
    std::process::ExitCode::from(2)
}
