//! A JSON room chat whose clients get back what they missed (feature `json`).
//!
//! `cargo run --example rooms --features json`, then open <http://127.0.0.1:8082/>: a page
//! with a room list, the members of the current room, its messages, and a "reconnecting…"
//! indicator; after the network drops, the page reconnects and shows the messages it missed,
//! each once, in order. With `--redis URL` (features `json,redis`) each process is one node of
//! one chat: a client recovers on any node.
//!
//! Options: `--addr HOST:PORT` (default `127.0.0.1:8082`), `--redis URL`, `--history N`
//! (messages kept per room, default 100), `--history-ttl SECS` (how long they are kept, default
//! 300).
//!
//! # Protocol
//!
//! For any client, not only the page. Connect with `GET /ws?user=NAME`: `NAME` is 1 to 32
//! characters, none a control character; a missing, empty or invalid `user` gets `400`. Every
//! message either way is a JSON text message (a JSON object).
//!
//! Client to server (`op`):
//!
//! - `{"op":"join","room":R}`, or `{"op":"join","room":R,"since":{"offset":N,"epoch":E}}` with
//!   the position of the last message the client got from `R`. A room name is 1 to 64
//!   characters, none a control character.
//! - `{"op":"leave","room":R}`
//! - `{"op":"say","room":R,"text":T}`: only in a room the connection joined; `T` is 1 to 2,000
//!   characters.
//! - `{"op":"presence","room":R}`
//!
//! Server to client (`type`):
//!
//! - `{"type":"message","room":R,"offset":N,"epoch":E,"user":U,"text":T}`: a message said in
//!   `R`, to every member, the sender included. `offset` counts the room's messages from 1 in
//!   the room's history `epoch`; a client keeps the last `{offset, epoch}` it got per room.
//! - `{"type":"joined","room":R,"epoch":E,"offset":N,"recovered":B}`: the reply to `join`.
//!   `offset` is the room's latest offset when the join completed: every later `message` of
//!   the room has a higher one. On a join with `since`, the messages missed since then come
//!   first, as `message`s, and `recovered` says whether they are exactly all of them; when it
//!   is `false` (a position from another epoch, or older than what is kept: the last
//!   `--history` messages, none older than `--history-ttl`), nothing is replayed. Without
//!   `since`, `recovered` is `false` and nothing is replayed.
//! - `{"type":"presence","room":R,"users":[...]}`: the reply to `presence`, the names of the
//!   room's members on every node, each once, sorted.
//! - `{"type":"join","room":R,"user":U}` and `{"type":"leave","room":R,"user":U}`: to the
//!   room's other members, on every node, when a connection joins it, leaves it, or closes
//!   (one per connection: a user with two tabs joins twice). The members of a node that dies
//!   without a word get no `leave`: they drop out of `presence` within 4 s.
//! - `{"type":"error","message":M}`: the reply to a command that is not valid (not JSON, an
//!   unknown `op`, a bad `since`, `say` in a room not joined, ...) or that failed (the
//!   history store is unreachable). The connection stays open.
//!
//! A session, as a third-party client sees it:
//!
//! ```text
//! > {"op":"join","room":"lobby"}
//! < {"type":"joined","room":"lobby","epoch":"k3v7q2xa","offset":41,"recovered":false}
//! > {"op":"say","room":"lobby","text":"hello"}
//! < {"type":"message","room":"lobby","offset":42,"epoch":"k3v7q2xa","user":"ada","text":"hello"}
//!   ... the connection drops, messages 43 and 44 are said meanwhile; a new connection:
//! > {"op":"join","room":"lobby","since":{"offset":42,"epoch":"k3v7q2xa"}}
//! < {"type":"message","room":"lobby","offset":43,"epoch":"k3v7q2xa","user":"bob","text":"hi"}
//! < {"type":"message","room":"lobby","offset":44,"epoch":"k3v7q2xa","user":"bob","text":"ada?"}
//! < {"type":"joined","room":"lobby","epoch":"k3v7q2xa","offset":44,"recovered":true}
//! ```
//!
//! How it is built: every room keeps history ([`ws::History`]); what is recorded and published
//! is the application's own `{"user":U,"text":T}`, and [`ws::History::format`] writes it as
//! the `message` above with its position, once per node, so a live and a replayed message are
//! the same bytes. `join` is [`ws::Endpoint::join_since`] with the `joined` reply queued by
//! `then_send`, between the replay and the live messages. Presence is [`ws::Presence`]:
//! `presence` is [`ws::Endpoint::presence`], and the `join`/`leave` events are made by
//! [`ws::Presence::events`].

use std::io::IsTerminal;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use warp::Filter;
use ws::{
    Accept, ClientId, Endpoint, History, Message, Position, Presence, PresenceChange,
    PresenceEvent, Recovery, Reject, Request, Room, websocket,
};

/// The page, served at `/`.
const PAGE: &str = include_str!("index.html");

/// The longest user name, room name and message text, in characters.
const MAX_USER: usize = 32;
const MAX_ROOM: usize = 64;
const MAX_TEXT: usize = 2000;

struct Rooms;

/// A connection's session: who it is and the rooms it joined (`say` is only for those).
struct Member {
    user: String,
    rooms: Vec<String>,
}

/// What clients send.
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Command {
    Join { room: String, since: Option<Since> },
    Leave { room: String },
    Say { room: String, text: String },
    Presence { room: String },
}

/// The position a client got to, as it sends it back.
#[derive(Debug, Deserialize)]
struct Since {
    offset: u64,
    epoch: String,
}

/// What is recorded and published for each message said.
#[derive(Serialize, Deserialize)]
struct Said<'a> {
    user: &'a str,
    text: &'a str,
}

/// What the server sends.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Event<'a> {
    Message {
        room: &'a str,
        offset: u64,
        epoch: &'a str,
        user: &'a str,
        text: &'a str,
    },
    Joined {
        room: &'a str,
        epoch: &'a str,
        offset: u64,
        recovered: bool,
    },
    Presence {
        room: &'a str,
        users: &'a [String],
    },
    Join {
        room: &'a str,
        user: &'a str,
    },
    Leave {
        room: &'a str,
        user: &'a str,
    },
    Error {
        message: &'a str,
    },
}

impl Event<'_> {
    fn message(&self) -> Message {
        // These events are strings and numbers: serializing them cannot fail.
        Message::json(self).unwrap_or_else(|_| Message::text("{}"))
    }
}

/// A name of 1 to `max` characters, none a control character.
fn valid_name(name: &str, max: usize) -> bool {
    (1..=max).contains(&name.chars().count()) && !name.chars().any(char::is_control)
}

/// Whether a client may name this room: every such room keeps history.
fn valid_room(room: &str) -> bool {
    valid_name(room, MAX_ROOM)
}

/// Tells the client what was wrong with its command; the connection stays open.
fn reply_error(endpoint: &Endpoint, id: ClientId, message: &str) {
    // A failed send means the client is already closing.
    let _ = endpoint.send(id, Event::Error { message }.message());
}

/// The message as the room's members get it, live or replayed: the recorded `{"user","text"}`
/// with the room and the position.
fn format_message(room: &Room, at: &Position, recorded: &Message) -> Message {
    let text = recorded.as_text().unwrap_or_default();
    let said = serde_json::from_str::<Said<'_>>(text).unwrap_or_else(|err| {
        // Only `say` records, and it records a `Said`: this is a bug, not a client's fault.
        tracing::error!("room {room}: a recorded message is not {{user, text}}: {err}");
        Said { user: "", text }
    });
    Event::Message {
        room: room.as_str(),
        offset: at.offset,
        epoch: at.epoch.as_str(),
        user: said.user,
        text: said.text,
    }
    .message()
}

// ---- presence ---------------------------------------------------------------------------------

/// The names of the room's members on every node, each once, sorted.
async fn presence_of(endpoint: &Endpoint, room: &str) -> Vec<String> {
    // When the cluster's store cannot be read, `presence` answers with this node's members
    // (and names the nodes it could not hear from in `missing`): better than no answer.
    let members = endpoint.presence(room).await.value;
    members.users().iter().map(ToString::to_string).collect()
}

/// The `join` or `leave` event the room's other members get, on every node, when a
/// connection joins the room, leaves it, or closes.
fn presence_event(room: &Room, event: &PresenceEvent) -> Option<Message> {
    let user = event.user.as_ref()?.as_str();
    let room = room.as_str();
    Some(match event.change {
        PresenceChange::Join => Event::Join { room, user }.message(),
        _ => Event::Leave { room, user }.message(),
    })
}

// ---- the socket ------------------------------------------------------------------------------

#[websocket]
impl Rooms {
    fn on_handshake(&self, req: &Request, accept: &mut Accept) -> Result<Member, Reject> {
        let user = req.query("user").unwrap_or_default();
        if !valid_name(user, MAX_USER) {
            return Err(Reject::bad_request(
                "`user` is required: 1 to 32 characters, none a control character.",
            ));
        }
        accept.user(user);
        Ok(Member {
            user: user.to_owned(),
            rooms: Vec::new(),
        })
    }

    async fn on_data(&self, endpoint: &Endpoint, id: ClientId, member: &mut Member, msg: Message) {
        let Some(text) = msg.as_text() else {
            return reply_error(endpoint, id, "commands are JSON text messages");
        };
        let command = match serde_json::from_str::<Command>(text) {
            Ok(command) => command,
            Err(err) => return reply_error(endpoint, id, &format!("bad command: {err}")),
        };
        match command {
            Command::Join { room, since } => join(endpoint, id, member, room, since).await,
            Command::Leave { room } => {
                let Some(at) = member.rooms.iter().position(|r| *r == room) else {
                    return reply_error(endpoint, id, &format!("not in room {room:?}"));
                };
                member.rooms.remove(at);
                endpoint.leave(id, &room);
            }
            Command::Say { room, text } => {
                if !member.rooms.contains(&room) {
                    return reply_error(
                        endpoint,
                        id,
                        &format!("join room {room:?} to say something in it"),
                    );
                }
                if !(1..=MAX_TEXT).contains(&text.chars().count()) {
                    return reply_error(endpoint, id, "text must be 1 to 2000 characters");
                }
                let said = Said {
                    user: &member.user,
                    text: &text,
                };
                let recorded = serde_json::to_string(&said).unwrap_or_default();
                // Recorded with the next offset and delivered to every member, this one
                // included, on every node; formatted by `format_message`.
                if let Err(err) = endpoint.publish(room.as_str(), recorded).await {
                    reply_error(endpoint, id, &format!("not sent: {err}"));
                }
            }
            Command::Presence { room } => {
                if !valid_room(&room) {
                    return reply_error(
                        endpoint,
                        id,
                        "a room name is 1 to 64 characters, none a control character",
                    );
                }
                let users = presence_of(endpoint, &room).await;
                let _ = endpoint.send(
                    id,
                    Event::Presence {
                        room: &room,
                        users: &users,
                    }
                    .message(),
                );
            }
        }
    }
}

/// `join`: the missed messages (if `since` can be recovered), then `joined`, then live.
async fn join(
    endpoint: &Endpoint,
    id: ClientId,
    member: &mut Member,
    room: String,
    since: Option<Since>,
) {
    if !valid_room(&room) {
        return reply_error(
            endpoint,
            id,
            "a room name is 1 to 64 characters, none a control character",
        );
    }
    let since = match since {
        None => None,
        Some(Since { offset, epoch }) => match epoch.parse() {
            Ok(epoch) => Some(Position::new(offset, epoch)),
            Err(err) => return reply_error(endpoint, id, &format!("bad since.epoch: {err}")),
        },
    };
    let name = room.clone();
    let joined = endpoint
        .join_since(id, room.as_str(), since)
        .then_send(move |r: &Recovery| {
            Some(
                Event::Joined {
                    room: &name,
                    epoch: r.position.epoch.as_str(),
                    offset: r.position.offset,
                    recovered: r.recovered,
                }
                .message(),
            )
        })
        .await;
    match joined {
        Ok(_) if !member.rooms.contains(&room) => member.rooms.push(room),
        // Joined again on the same connection: a fresh recovery, and no second `join` event.
        Ok(_) => {}
        Err(err) => reply_error(endpoint, id, &format!("could not join {room:?}: {err}")),
    }
}

// ---- the process -----------------------------------------------------------------------------

/// The cluster of every `rooms` on the Redis at `url`.
#[cfg(feature = "redis")]
fn redis_cluster(url: &str) -> Result<ws::Cluster, String> {
    ws::Cluster::redis(url).map_err(|err| format!("--redis {url}: {err}"))
}

#[cfg(not(feature = "redis"))]
fn redis_cluster(_url: &str) -> Result<ws::Cluster, String> {
    Err("--redis needs the feature `redis`: \
         cargo run --example rooms --features json,redis -- --redis URL"
        .into())
}

struct Args {
    addr: String,
    redis: Option<String>,
    history: usize,
    history_ttl: u64,
}

const USAGE: &str =
    "usage: rooms [--addr HOST:PORT] [--redis URL] [--history N] [--history-ttl SECS]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        addr: "127.0.0.1:8082".into(),
        redis: None,
        history: 100,
        history_ttl: 300,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--addr" => args.addr = value("--addr")?,
            "--redis" => args.redis = Some(value("--redis")?),
            "--history" => {
                args.history = value("--history")?
                    .parse()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or("--history takes a number of messages, at least 1")?;
            }
            "--history-ttl" => {
                args.history_ttl = value("--history-ttl")?
                    .parse()
                    .ok()
                    .filter(|secs| *secs >= 1)
                    .ok_or("--history-ttl takes a number of seconds, at least 1")?;
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument `{other}`; try --help")),
        }
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
    let history = History::new(args.history, Duration::from_secs(args.history_ttl))
        .rooms(valid_room)
        .format(format_message);
    let presence = Presence::new().rooms(valid_room).events(presence_event);
    let mut config = ws::Config::new()
        .history(Some(history))
        .presence(Some(presence));
    if let Some(url) = &args.redis {
        match redis_cluster(url) {
            Ok(cluster) => config = config.cluster(cluster),
            Err(msg) => {
                eprintln!("rooms: {msg}");
                return std::process::ExitCode::from(2);
            }
        }
    }
    let rooms = ws::Socket::with_config(Rooms, config);
    let routes = warp::path("ws")
        .and(warp::path::end())
        .and(rooms.filter())
        .or(warp::path::end().map(|| warp::reply::html(PAGE)));
    let server = match ws::serve(routes)
        .socket(&rooms)
        .bind(args.addr.as_str())
        .await
    {
        Ok(server) => server,
        Err(err) => {
            eprintln!("rooms: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    tracing::info!(
        "Rooms at http://{}/ (history: the last {} messages of each room, at most {} s old)",
        server.local_addr(),
        args.history,
        args.history_ttl
    );
    if let Some(url) = &args.redis {
        tracing::info!(
            "Node {} of the rooms shared over Redis at {url}",
            rooms.endpoint().node()
        );
    }
    match server.run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("rooms: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
