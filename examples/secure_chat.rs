//! The seed of `ws`, made real: a password-protected chat.
//!
//! `cargo run --example secure_chat` then open <http://127.0.0.1:8080/>. The page connects to
//! `/ws?password=...`; a wrong or missing password gets `403 Nope. Valid password required.`,
//! and every message a member sends is broadcast to the other members, and logged as the
//! original page describes: `User with client id ID from ADDR sent: TEXT` (a text of more than
//! 200 characters is cut in the log, not in the broadcast).
//!
//! The configuration is the default one with a single change: permessage-deflate (RFC 7692)
//! is on, with the default [`ws::Deflate`] settings, so browsers (which offer it on every
//! connection) get `permessage-deflate` in `WebSocket.extensions` and messages of 256 bytes or
//! more travel compressed.
//!
//! Options: `--addr HOST:PORT` (default `127.0.0.1:8080`), `--password PASSWORD` (default
//! `$CHAT_PASSWORD`, else `reallyverysecure`), `--tls-cert PATH --tls-key PATH` (PEM files,
//! both or neither: serve `https://` and `wss://`; the page then connects with `wss:`),
//! `--no-deflate` (decline permessage-deflate: the configuration is then entirely the default),
//! `--redis redis://HOST:PORT` (feature `redis`: this process is one node of a chat shared by
//! every process on that Redis; run several on different `--addr` ports), `--metrics
//! HOST:PORT` (feature `metrics`: Prometheus metrics at `http://HOST:PORT/metrics`, an address
//! of their own so that the chat's public port does not show them; the crate guide's
//! "Metrics" lists them; tokio's live tasks and workers at `/runtime`), `--dashboard HOST:PORT` (a live page of the same figures for
//! operators, [`ws::Dashboard`], at `http://HOST:PORT/`; no feature needed).

use std::io::IsTerminal;
use std::net::SocketAddr;

use warp::Filter;
use ws::{ClientId, Close, Endpoint, Message, Recipients, Reject, Request, websocket};

#[path = "support/prometheus.rs"]
mod prometheus;

struct Chat {
    password: String,
}

/// Per-connection state, created by `on_handshake`.
struct Member {
    addr: SocketAddr,
}

#[websocket]
impl Chat {
    fn on_handshake(&self, req: &Request) -> Result<Member, Reject> {
        if req.query("password") != Some(self.password.as_str()) {
            return Err(Reject::forbidden("Nope. Valid password required."));
        }
        Ok(Member {
            addr: req.remote_addr(),
        })
    }

    fn on_open(&self, id: ClientId, member: &mut Member) {
        tracing::info!(
            "Successful Handshake for user with client id {id} from {}",
            member.addr
        );
    }

    fn on_data(&self, endpoint: &Endpoint, id: ClientId, member: &mut Member, msg: Message) {
        // What the seed's page prints for each message; a long text is cut in the log only.
        if let Some(text) = msg.as_text() {
            tracing::info!(
                "User with client id {id} from {} sent: {}",
                member.addr,
                shorten(text)
            );
        } else {
            tracing::info!(
                "User with client id {id} from {} sent {} bytes of binary",
                member.addr,
                msg.len()
            );
        }
        endpoint.deliver(Recipients::except([id]), msg);
    }

    fn on_close(&self, id: ClientId, close: Close) {
        tracing::info!(
            "User with client id {id} closed connection with code {}",
            close.code
        );
    }

    fn on_stop(&self) {
        tracing::info!("Server stopping: closing every member with 1001");
    }
}

/// At most the first 200 characters of `text`, with `…` when it goes on.
fn shorten(text: &str) -> std::borrow::Cow<'_, str> {
    const LOGGED: usize = 200;
    match text.char_indices().nth(LOGGED) {
        Some((end, _)) => format!("{}…", &text[..end]).into(),
        None => text.into(),
    }
}

/// The cluster of every `secure_chat` on the Redis at `url`. Redis is reached in the
/// background: the chat starts and serves its own members while Redis is down.
#[cfg(feature = "redis")]
fn redis_cluster(url: &str) -> Result<ws::Cluster, String> {
    ws::Cluster::redis(url).map_err(|err| format!("--redis {url}: {err}"))
}

#[cfg(not(feature = "redis"))]
fn redis_cluster(_url: &str) -> Result<ws::Cluster, String> {
    Err("--redis needs the feature `redis`: \
         cargo run --example secure_chat --features redis -- --redis URL"
        .into())
}

struct Args {
    addr: String,
    metrics: Option<String>,
    dashboard: Option<String>,
    password: String,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    redis: Option<String>,
    deflate: bool,
}

const USAGE: &str = "usage: secure_chat [--addr HOST:PORT] [--password PASSWORD] \
                     [--tls-cert CERT.pem --tls-key KEY.pem] [--no-deflate] [--redis URL] \
                     [--metrics HOST:PORT] [--dashboard HOST:PORT]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        addr: "127.0.0.1:8080".into(),
        metrics: None,
        dashboard: None,
        password: std::env::var("CHAT_PASSWORD").unwrap_or_else(|_| "reallyverysecure".into()),
        tls_cert: None,
        tls_key: None,
        deflate: true,
        redis: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--addr" => args.addr = value("--addr")?,
            "--password" => args.password = value("--password")?,
            "--tls-cert" => args.tls_cert = Some(value("--tls-cert")?),
            "--tls-key" => args.tls_key = Some(value("--tls-key")?),
            "--no-deflate" => args.deflate = false,
            "--redis" => args.redis = Some(value("--redis")?),
            "--metrics" => args.metrics = Some(value("--metrics")?),
            "--dashboard" => args.dashboard = Some(value("--dashboard")?),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument `{other}`; try --help")),
        }
    }
    if args.tls_cert.is_some() != args.tls_key.is_some() {
        return Err("--tls-cert and --tls-key go together: give both or neither".into());
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        // Colours only on a terminal: redirected to a file, the log stays plain text.
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    let args = match parse_args() {
        Ok(args) => args,
        Err(msg) => {
            eprintln!("{msg}");
            return std::process::ExitCode::from(2);
        }
    };
    // The default configuration, plus permessage-deflate: browsers offer it on every
    // connection and chat text compresses well. The default `Deflate` keeps no compression
    // context per connection (each message is compressed on its own, a broadcast once for all
    // receivers that negotiated the same window); messages under 256 bytes go uncompressed. A
    // member that sends compressed messages keeps only its compression window between them:
    // at most 2 KiB, browsers being answered `client_max_window_bits=11`.
    let mut config = ws::Config::default().deflate(args.deflate.then(ws::Deflate::default));
    if let Some(url) = &args.redis {
        match redis_cluster(url) {
            Ok(cluster) => config = config.cluster(cluster),
            Err(msg) => {
                eprintln!("secure_chat: {msg}");
                return std::process::ExitCode::from(2);
            }
        }
    }
    if let Some(addr) = &args.metrics {
        match prometheus::serve(addr, "secure_chat").await {
            Ok(at) => tracing::info!("Metrics at http://{at}/metrics"),
            Err(msg) => {
                eprintln!("secure_chat: {msg}");
                return std::process::ExitCode::from(2);
            }
        }
    }
    let chat = ws::Socket::with_config(
        Chat {
            password: args.password,
        },
        config,
    );
    if let Some(addr) = &args.dashboard {
        // On an address of its own: the public port does not show it. Put it behind your
        // authentication when that address is reachable by others.
        let dashboard = ws::Dashboard::new().socket(&chat).filter();
        match ws::serve(dashboard).bind(addr.as_str()).await {
            Ok(server) => {
                tracing::info!("Dashboard at http://{}/", server.local_addr());
                tokio::spawn(server.run());
            }
            Err(err) => {
                eprintln!("secure_chat: --dashboard {addr}: {err}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    let public = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/public");
    let routes = warp::path("ws")
        .and(warp::path::end())
        .and(chat.filter())
        .or(warp::fs::dir(public));
    let mut server = ws::serve(routes).socket(&chat);
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        match ws::Tls::from_pem_files(cert, key) {
            Ok(tls) => server = server.tls(tls),
            Err(err) => {
                eprintln!("secure_chat: {err}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    let server = match server.bind(args.addr.as_str()).await {
        Ok(server) => server,
        Err(err) => {
            eprintln!("secure_chat: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let scheme = if server.is_tls() { "https" } else { "http" };
    tracing::info!("Chat at {scheme}://{}/", server.local_addr());
    if let Some(url) = &args.redis {
        tracing::info!(
            "Node {} of the chat shared over Redis at {url}",
            chat.endpoint().node()
        );
    }
    match server.run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("secure_chat: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
