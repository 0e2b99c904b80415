//! Declarative WebSocket servers on [warp]: write the hooks you need on a type, get a warp
//! filter with correct handshakes, typed sessions, an [`Endpoint`] to send from anywhere,
//! and a graceful shutdown.
//!
//! # Quick start
//!
//! ```no_run
//! use warp::Filter;
//! use ws::{ClientId, Close, Endpoint, Message, Recipients, Reject, Request};
//!
//! struct Chat {
//!     password: String,
//! }
//!
//! /// One per connection: what `on_handshake` accepts with.
//! struct Member {
//!     name: String,
//! }
//!
//! #[ws::websocket]
//! impl Chat {
//!     async fn on_handshake(&self, req: &Request) -> Result<Member, Reject> {
//!         if req.query("password") != Some(self.password.as_str()) {
//!             return Err(Reject::forbidden("Nope. Valid password required."));
//!         }
//!         let name = req.query("name").unwrap_or("anonymous").to_owned();
//!         Ok(Member { name })
//!     }
//!
//!     async fn on_data(&self, endpoint: &Endpoint, id: ClientId, member: &mut Member, msg: Message) {
//!         if let Some(text) = msg.as_text() {
//!             endpoint.deliver(Recipients::except([id]), format!("{}: {text}", member.name));
//!         }
//!     }
//!
//!     async fn on_close(&self, id: ClientId, member: Member, close: Close) {
//!         tracing::info!("{} ({id}) left with {}", member.name, close.code);
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), ws::Error> {
//!     // The library logs with `tracing`: "listening", refusals, hook failures, shutdown.
//!     tracing_subscriber::fmt().init();
//!     let chat = ws::Socket::new(Chat {
//!         password: "reallyverysecure".into(),
//!     });
//!     let routes = warp::path("ws").and(chat.filter()).or(warp::fs::dir("public"));
//!     // on_start, then serve; on SIGINT/SIGTERM every client gets 1001 and `run` returns.
//!     ws::serve(routes).socket(&chat).run("127.0.0.1:8080").await
//! }
//! ```
//!
//! # The pieces
//!
//! - [`#[websocket]`](websocket) on an inherent `impl` block turns its `on_*` methods into
//!   the [`Handler`] the runtime drives; its documentation has the table of hooks.
//! - [`Socket`] holds a handler, its [`Config`] and its [`Endpoint`];
//!   [`Socket::filter`] is the warp filter that answers handshakes.
//! - [`Request`] is what `on_handshake` sees; [`Accept`] shapes the 101 reply (headers,
//!   cookies, subprotocol); [`Reject`] is any other HTTP reply.
//! - [`Endpoint`] sends, broadcasts and closes from anywhere; [`ClientInfo`] has each client's
//!   counters.
//! - [`serve`] runs the routes with the sockets' lifecycle and a graceful shutdown.
//!
//! # Hooks
//!
//! [`#[websocket]`](websocket) reads the `on_*` methods of an inherent `impl` block; its
//! documentation has [the table of hooks](websocket#hooks): when each runs, what it may take
//! and what happens when it is absent. In short:
//!
//! - `on_start()` once before the first connection; `on_stop()` when shutdown begins.
//! - `on_handshake(&Request, &mut Accept) -> Result<S, E>` decides each upgrade request.
//! - `on_open(ClientId, &mut S)`, then `on_data(ClientId, &mut S, T)` per message, in order,
//!   one at a time per connection, then `on_close(ClientId, S, Close)` exactly once.
//! - Every hook may also take the socket's [`Endpoint`], as `&Endpoint` (or `Endpoint`, a
//!   clone to keep): to reply, broadcast or close from inside a hook.
//!
//! Hooks may be `async fn` or plain `fn`, and take only the parameters they use, in any order.
//!
//! # Sessions
//!
//! Whatever `on_handshake` returns in `Ok` is that connection's session: `on_open` and
//! `on_data` get it as `&mut S`, `on_close` gets it back by value. There is no map of clients
//! to keep and no lock to take: each connection owns its session.
//!
//! ```
//! use ws::{Close, Reject, Request};
//!
//! struct Game;
//!
//! /// One per connection.
//! struct Player {
//!     name: String,
//!     moves: u32,
//! }
//!
//! #[ws::websocket]
//! impl Game {
//!     fn on_handshake(&self, req: &Request) -> Result<Player, Reject> {
//!         let name = req.query("name").ok_or(Reject::bad_request("?name= is required"))?;
//!         Ok(Player { name: name.to_owned(), moves: 0 })
//!     }
//!
//!     fn on_data(&self, player: &mut Player, text: String) {
//!         player.moves += 1;
//!         println!("{} played {text}", player.name);
//!     }
//!
//!     fn on_close(&self, player: Player, close: Close) {
//!         println!("{} left after {} moves ({close})", player.name, player.moves);
//!     }
//! }
//! ```
//!
//! Without `on_handshake` every request is accepted and the session is `()`.
//!
//! # Accepting or refusing
//!
//! `on_handshake`'s return type says whether it can refuse, and the compiler holds it to that:
//!
//! | it returns | accepts with | refuses with |
//! | --- | --- | --- |
//! | `Result<S, E>`, or any alias of it, where `E` is [`Reject`] or has `From<E> for Reject` | `Ok(session)` | `Err(e)`: that HTTP reply |
//! | `Option<S>` | `Some(session)` | `None`: `403 Forbidden` |
//! | `bool` | `true`: session `()` | `false`: `403 Forbidden` |
//! | `()`, or no return type | always: session `()` | never |
//!
//! Any other return type is a compile error that lists these forms: a hook that returns a
//! session alone could never refuse, so an authentication check written that way cannot
//! compile. To always accept with a session, return `Result<S, Reject>` and `Ok(session)`. An
//! error type that is not a refusal (`String`, `io::Error`, `anyhow::Error`) is a compile
//! error too, which names the [`Reject`] constructors to use instead.
//!
//! ## Releasing what a handshake reserved
//!
//! Once called, `on_handshake` runs to completion: it is not interrupted at an `.await` when
//! the client goes away or when shutdown begins, and shutdown waits for it. The session it
//! accepts with then meets one of two ends:
//!
//! - The connection opens: `on_open`, every `on_data`, then `on_close`, which receives the
//!   session by value; it is dropped when `on_close` returns (unless `on_close` moves it). A
//!   client that left while the hook ran is usually noticed only after the 101: its
//!   connection opens and at once closes with 1006.
//! - The connection never opens: the server noticed before the 101 that the client had left,
//!   the upgrade failed, or shutdown began while the hook ran (the client then gets `503`).
//!   The session is dropped; neither `on_open` nor `on_close` runs.
//!
//! So what a handshake reserves (a unique name, a seat, a quota) is released in the session's
//! `Drop`, which runs exactly once whichever way the session ends. `on_open` and `on_close`
//! always come in pairs, for what only open connections hold.
//!
//! ```
//! use std::collections::HashSet;
//! use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
//!
//! use ws::{Reject, Request};
//!
//! /// The names in use, shared by the handler and every session.
//! #[derive(Clone, Default)]
//! struct Names(Arc<Mutex<HashSet<String>>>);
//!
//! impl Names {
//!     fn lock(&self) -> MutexGuard<'_, HashSet<String>> {
//!         self.0.lock().unwrap_or_else(PoisonError::into_inner)
//!     }
//! }
//!
//! /// A connection's session: the name it holds, released when the session is dropped.
//! struct Member {
//!     name: String,
//!     names: Names,
//! }
//!
//! impl Drop for Member {
//!     fn drop(&mut self) {
//!         self.names.lock().remove(&self.name);
//!     }
//! }
//!
//! #[derive(Default)]
//! struct Cursors {
//!     names: Names,
//! }
//!
//! #[ws::websocket]
//! impl Cursors {
//!     fn on_handshake(&self, req: &Request) -> Result<Member, Reject> {
//!         let name = req.query("name").ok_or(Reject::bad_request("?name= is required"))?;
//!         if !self.names.lock().insert(name.to_owned()) {
//!             return Err(Reject::conflict("That name is taken."));
//!         }
//!         // From here on the name is released however this session ends.
//!         Ok(Member { name: name.to_owned(), names: self.names.clone() })
//!     }
//! }
//! ```
//!
//! `examples/cursors.rs` is a complete application built this way, with its tests.
//!
//! # Receiving
//!
//! `on_data`'s message parameter is any type that implements [`FromMessage`]: [`Message`]
//! (text or binary), [`String`] or [`Text`] (a binary message closes with 1003), `Vec<u8>`
//! or `Bytes` (text arrives as its UTF-8), [`Json<T>`][json-type] with the feature `json`, or
//! your own type. A message that does not convert closes the client with the [`Close`] the
//! conversion returned, and `on_data` is not called: for `Json<T>`, a message that is not
//! JSON of type `T` closes with 1007 "Invalid JSON: ..." and `serde_json`'s error.
//!
//! Take a [`MessageStream`] instead and a large fragmented message reaches `on_data` frame by
//! frame as it arrives, in bounded memory (two chunks wait at most, then reading from that
//! client pauses); the message limit still applies to the whole, so raise
//! [`max_message_size`](Config::max_message_size) for uploads. A message sent in one frame is a
//! stream of one chunk.
//!
//! ```
//! #[derive(Default)]
//! struct Upload;
//!
//! #[ws::websocket]
//! impl Upload {
//!     async fn on_data(&self, mut message: ws::MessageStream) -> Result<(), ws::Close> {
//!         let mut received = 0;
//!         while let Some(chunk) = message.next_chunk().await? {
//!             received += chunk.len(); // write it to disk, hash it, forward it...
//!         }
//!         println!("{received} bytes");
//!         Ok(())
//!     }
//! }
//!
//! let socket = ws::Socket::with_config(Upload, ws::Config::new().max_message_size(1 << 30));
//! # let _ = socket;
//! ```
//!
//! # Sending with the `Endpoint`
//!
//! The [`Endpoint`] is a cheap, cloneable handle on a socket's clients. Every hook can take
//! it as a parameter (`endpoint: &Endpoint`); elsewhere, take one from [`Socket::endpoint`]
//! (or by value in `on_start`, to keep) and use it from spawned tasks or other routes.
//!
//! | call | does |
//! | --- | --- |
//! | [`send(id, msg)`](Endpoint::send) | queues for one client |
//! | [`broadcast(msg)`](Endpoint::broadcast) | queues for every open client; one shared payload |
//! | [`deliver(to, msg)`](Endpoint::deliver) | queues for these [`Recipients`]: `Recipients::All`, `Recipients::except(ids)`, an id or a list of ids, `Recipients::room(name)` |
//! | [`deliver_wait(to, msg)`](Endpoint::deliver_wait) | the same, waiting for room under [`SlowConsumer::Wait`] |
//! | [`close(id, code, reason)`](Endpoint::close) | closes one client after what is queued for it |
//! | [`clients`](Endpoint::clients), [`len`](Endpoint::len), [`info(id)`](Endpoint::info) | who is connected, with counters |
//! | [`join(id, room)`](Endpoint::join), [`leave(id, room)`](Endpoint::leave) | puts a client in a named [`Room`], takes it out; a client leaves every room when it closes |
//! | [`rooms(id)`](Endpoint::rooms), [`members(room)`](Endpoint::members), [`room_len(room)`](Endpoint::room_len), [`room_names`](Endpoint::room_names) | who is in which room |
//! | [`Recipients::user`]`(key)`, [`close_user(key, code, reason)`](Endpoint::close_user), [`user(id)`](Endpoint::user), [`connections(key)`](Endpoint::connections) | every connection of one user (the key `on_handshake` gave with [`Accept::user`]), on every node |
//!
//! Rooms are named groups: [`Recipients::room`]`("lobby")` addresses a room's members,
//! [`Recipients::rooms`] several rooms (a client in two of them gets the message once), and
//! [`.excluding(ids)`](Recipients::excluding) leaves some out, typically the sender:
//!
//! ```
//! use ws::{ClientId, Endpoint, Recipients};
//!
//! struct Chat;
//!
//! #[ws::websocket]
//! impl Chat {
//!     fn on_open(&self, endpoint: &Endpoint, id: ClientId) {
//!         endpoint.join(id, "lobby").ok();
//!     }
//!
//!     fn on_data(&self, endpoint: &Endpoint, id: ClientId, text: String) {
//!         endpoint.deliver(Recipients::room("lobby").excluding([id]), text);
//!     }
//! }
//! ```
//!
//! One person often has several connections (tabs, devices). Say who a connection is in
//! `on_handshake` with [`Accept::user`], and address them all at once, on every node of a
//! cluster:
//!
//! ```
//! use ws::{Accept, Endpoint, Recipients, Request};
//!
//! struct Inbox;
//!
//! #[ws::websocket]
//! impl Inbox {
//!     fn on_handshake(&self, req: &Request, accept: &mut Accept) -> bool {
//!         // Your authentication here; the key is whatever names the user.
//!         match req.query("user").filter(|user| !user.is_empty()) {
//!             Some(user) => {
//!                 accept.user(user);
//!                 true
//!             }
//!             None => false,
//!         }
//!     }
//! }
//!
//! # fn notify(endpoint: &Endpoint) {
//! endpoint.deliver(Recipients::user("ada"), "new mail");
//! endpoint.close_user("ada", 4001, "signed out").ok();
//! # }
//! ```
//!
//! A message is text, binary, or any `Serialize` value made into a text message once with
//! `Message::json` (feature `json`, see [`Json`][json-type]), then handed to any of these.
//!
//! Sends never wait: each client has a bounded queue, written by its own task. A client whose
//! queue is full is a slow consumer and is closed with 1008 (see [`SlowConsumer`] for the other
//! policies), so one slow reader neither grows memory nor delays the others. A broadcast
//! returns a [`Delivery`] with the clients that did not get it.
//!
//! ```
//! # async fn demo(endpoint: ws::Endpoint, id: ws::ClientId) {
//! tokio::spawn(async move {
//!     let delivery = endpoint.broadcast("news for everyone");
//!     if !delivery.failed.is_empty() {
//!         tracing::debug!("{} slow clients are being closed", delivery.failed.len());
//!     }
//! });
//! # }
//! ```
//!
//! `examples/push.rs` is a complete server-push example: `on_start` spawns a task that
//! broadcasts a tick every second, `on_stop` stops it.
//!
//! # Clusters: one application on many nodes
//!
//! When one process is not enough, run several behind a load balancer and make each socket a
//! node of one cluster with [`Config::cluster`]: every [`Endpoint`] operation then reaches the
//! clients of every node. Nodes reach each other through a backplane: Redis (feature `redis`,
//! [`Cluster::redis`][cluster-redis]), the in-process [`cluster::Hub`] (several nodes in one process, as in
//! tests), or your own engine ([`cluster::Backplane`]). The default, [`Cluster::standalone`],
//! is a cluster of one: nothing leaves the process.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! struct Chat;
//!
//! #[ws::websocket]
//! impl Chat {
//!     fn on_data(&self, endpoint: &ws::Endpoint, text: String) {
//!         // Every client of every node.
//!         endpoint.broadcast(text);
//!     }
//! }
//!
//! let hub = ws::cluster::Hub::new();
//! let node = |hub| ws::Socket::with_config(Chat, ws::Config::new().cluster(ws::Cluster::in_process(hub)));
//! let (a, b) = (node(&hub), node(&hub));
//! # drop((a, b));
//! # }
//! ```
//!
//! Every [`ClientId`] names its node ([`ClientId::node`], shown as `NODE-NUMBER`), so an
//! operation on one client goes to that client's node only:
//!
//! | operation | across nodes |
//! | --- | --- |
//! | [`send`](Endpoint::send), [`close`](Endpoint::close), [`join`](Endpoint::join), [`leave`](Endpoint::leave) of another node's client | sent to that node alone, which applies it to its client; `Ok` once sent (what the node then does is not reported back) |
//! | [`deliver`](Endpoint::deliver) / [`broadcast`](Endpoint::broadcast) to all, all but some, ids, rooms | this node's recipients at once, the rest published **once** (not once per node) with the payload encoded once; [`Delivery::remote`] says whether it was published |
//! | a room | membership stays with the client's node; a node receives a room's deliveries only while it has members there; a client in two of the rooms gets the message once |
//! | [`clients`](Endpoint::clients), [`len`](Endpoint::len), [`info`](Endpoint::info), [`members`](Endpoint::members), [`rooms`](Endpoint::rooms), [`room_len`](Endpoint::room_len) | this node's clients only, at once |
//! | [`nodes`](Endpoint::nodes), [`cluster_len`](Endpoint::cluster_len), [`cluster_clients`](Endpoint::cluster_clients) | the whole cluster: the nodes answer within a timeout (1 s), and a [`Partial`] names those that did not, instead of waiting for them |
//!
//! **Order.** What one node does to a client of another (sends, deliveries of any kind, its
//! close), in any mix and from one task, reaches that client in the order it was done: each
//! node publishes through one ordered link and applies what arrives in arrival order to the
//! clients' ordered queues. Not ordered: operations of different nodes with each other, and
//! a room delivery made right after a remote [`join`](Endpoint::join) to a room the client's
//! node had no member in yet (the join is applied first, but the node subscribes to the
//! room's topic as it applies it, and over Redis that subscription can land after the
//! delivery was published).
//!
//! **Membership.** Each node sends a heartbeat every second ([`Cluster::heartbeat`]); a node
//! that stops gracefully tells the others, which drop it at once; a node killed without a
//! word is dropped by the others within 4 s (its last heartbeat's 3 s expiry,
//! [`Cluster::expiry`], plus a quarter-second sweep). Sends to a departed node's clients then
//! fail at once with [`SendError::UnknownClient`].
//!
//! **When the backplane is down**, each node keeps serving its own clients and accepting new
//! ones: local delivery never waits on the backplane. Calls that need another node fail at
//! once ([`SendError::Unavailable`], [`Remote::Unsent`]) and are counted
//! ([`Endpoint::cluster_stats`]); a node that cannot hear the others does not declare them
//! dead. Lost, and only this: the remote part of what was done while the link was down,
//! envelopes in flight when it broke (never sent twice), and what others published while this
//! node's subscription was down (counted as `missed`, from sequence numbers). Room membership,
//! sessions and ids survive: membership lives on each client's node, and room subscriptions
//! are restored from it when the link comes back.
//!
//! **Rolling upgrades.** The envelope between nodes carries a version; a node that receives
//! one it cannot read drops it, counts it (`unreadable`) and warns once per version, rather
//! than misreading it.
//!
//! # Room history: giving back what a client missed
//!
//! Clients drop and reconnect (phones change networks, laptops sleep, a deploy restarts a
//! node). With [`Config::history`], rooms keep their last messages, each with a [`Position`]:
//! an offset (1, 2, 3, ... per room) and the history's [`Epoch`], which changes whenever the
//! history is lost so that an old offset is never trusted. A client remembers the position of
//! the last message it got; when it comes back, [`Endpoint::join_since`] gives it exactly the
//! messages it missed, in order, then the live ones, with none missed or repeated even while
//! others keep publishing; or, when that cannot be guaranteed, an honest [`Recovery`] with
//! `recovered: false`, the reason ([`NotRecovered`]) and nothing replayed, so the application
//! reloads the room its own way.
//!
//! ```
//! use std::time::Duration;
//! use ws::{ClientId, Config, Endpoint, History, Message, Position, Recipients, Socket};
//!
//! struct Chat;
//!
//! #[ws::websocket]
//! impl Chat {
//!     async fn on_data(&self, endpoint: &Endpoint, id: ClientId, text: String) {
//!         // Your protocol: here `join ROOM [OFFSET EPOCH]` or `ROOM TEXT`.
//!         let words: Vec<&str> = text.split(' ').collect();
//!         match words[..] {
//!             ["join", room, ref since @ ..] => {
//!                 let since = match since {
//!                     [offset, epoch] => offset.parse().ok().zip(epoch.parse().ok()),
//!                     _ => None,
//!                 };
//!                 let since = since.map(|(offset, epoch)| Position::new(offset, epoch));
//!                 endpoint
//!                     .join_since(id, room, since)
//!                     .then_send(|r| Some(format!("joined {} {}", r.position, r.recovered).into()))
//!                     .await
//!                     .ok();
//!             }
//!             [room, ..] => {
//!                 endpoint.deliver(Recipients::room(room), text.clone());
//!             }
//!             _ => {}
//!         }
//!     }
//! }
//!
//! let history = History::new(100, Duration::from_secs(300)) // the last 100, at most 5 min old
//!     .format(|room, at, message| {
//!         // What members get: the message with its position, so clients can keep it.
//!         let text = message.as_text().unwrap_or_default();
//!         Message::text(format!("{room} {} {} {text}", at.offset, at.epoch))
//!     });
//! let socket = Socket::with_config(Chat, Config::new().history(Some(history)));
//! # drop(socket);
//! ```
//!
//! | call | does |
//! | --- | --- |
//! | [`deliver`](Endpoint::deliver)`(`[`Recipients::room`]`(r), msg)` to a room that keeps history | records the message with the next position and delivers it, formatted, to the members; [`Delivery::position`] is its position |
//! | [`publish(room, msg)`](Endpoint::publish) | the same, and its future gives the position (or why it was not recorded) |
//! | [`join_since(id, room, since)`](Endpoint::join_since) | joins, replaying what was missed since `since`; [`then_send`](JoinSince::then_send) queues a reply between the replay and the live messages |
//! | [`history_stats`](Endpoint::history_stats) | rooms, messages kept, recorded, replayed, recoveries by outcome |
//!
//! A position is recovered when it is from the room's current epoch and every message after
//! it is still kept (at most `keep` messages, none older than the TTL). On one node history
//! lives in memory: a restart begins a new epoch in every room, so every client gets an
//! honest `recovered: false` after it. In a cluster it lives in the backplane's store (Redis,
//! or the [`cluster::Hub`]): one history per room for every node, which survives restarts of
//! the nodes, and a client recovers on any node. A room's recorded messages then reach every
//! member, the sender's node included, through the store, in offset order (one Redis round
//! trip later than a plain delivery, and not at all while Redis is down:
//! [`publish`](Endpoint::publish) fails then). A node that misses some of a room's messages
//! (its link was down) reads them back from the store; if the store lost them, the room's
//! members on that node are closed with 1012 so that they come back and are told the truth. Only messages to rooms are recorded (not broadcasts or sends
//! to ids); [`History::rooms`] chooses the rooms. A member too slow to take a recorded
//! message is closed with 1008 whatever the [`SlowConsumer`] policy: it comes back and
//! recovers, rather than silently missing one.
//!
//! # Presence: who is in a room, on every node
//!
//! With [`Config::presence`], rooms track their members across the cluster:
//! [`Endpoint::presence`]`(room).await` lists every member on every node with its user
//! ([`Accept::user`]), and [`Presence::events`] tells a room's members when someone joins or
//! leaves, on every node.
//!
//! ```
//! use ws::{Config, Message, Presence, PresenceChange};
//!
//! let config = Config::new().presence(Some(Presence::new().events(|room, event| {
//!     let user = event.user.as_ref()?;
//!     let change = if event.change == PresenceChange::Join { "join" } else { "leave" };
//!     Some(Message::text(format!("{change} {room} {user}")))
//! })));
//! # async fn demo(endpoint: ws::Endpoint) {
//! let lobby = endpoint.presence("lobby").await;
//! println!("{} connections, users {:?}", lobby.value.len(), lobby.value.users());
//! # }
//! # drop(config);
//! ```
//!
//! Each node owns its members; in a cluster it also writes a copy to the backplane's store
//! (Redis: a hash per node and room) and marks itself alive with each heartbeat, so a node
//! killed without a word drops out of every list within 4 s ([`Cluster::expiry`] and the
//! sweep), like it drops out of [`Endpoint::nodes`]. Its members leave without a leave event.
//! While the store cannot be read, [`Endpoint::presence`] answers with this node's members and
//! names the other live nodes in [`Partial::missing`].
//!
//! # Configuration and defaults
//!
//! [`Socket::new`] uses [`Config::default`]; [`Socket::with_config`] takes your own. Every
//! setting has a production default:
//!
//! | setting | default | beyond it |
//! | --- | --- | --- |
//! | [`max_message_size`](Config::max_message_size) | 10 MiB | close 1009 |
//! | [`max_frame_size`](Config::max_frame_size) | 1 MiB | close 1009 |
//! | [`read_buffer_size`](Config::read_buffer_size) | 4 KiB | |
//! | [`write_buffer_size`](Config::write_buffer_size) | 256 KiB | |
//! | [`send_frame_size`](Config::send_frame_size) | 64 KiB | larger messages go out fragmented, pings answered between the frames |
//! | [`send_queue`](Config::send_queue) | 1024 messages per client | slow consumer policy |
//! | [`send_queue_bytes`](Config::send_queue_bytes) | 4 MiB per client | slow consumer policy |
//! | [`slow_consumer`](Config::slow_consumer) | [`SlowConsumer::Close`]: close 1008 | |
//! | [`text_only`](Config::text_only) | off | binary closes with 1003 when on |
//! | [`rate_limit`](Config::rate_limit) | 1 MiB/s and 100 frames/s per client | reading slows down, never closes |
//! | [`max_connections`](Config::max_connections) | 10,000 | `503` with `Retry-After` |
//! | [`max_connections_per_ip`](Config::max_connections_per_ip) | 256 | `429` with `Retry-After` |
//! | [`close_timeout`](Config::close_timeout) | 3 s | TCP dropped |
//! | [`heartbeat`](Config::heartbeat) | ping after 10 s of silence | |
//! | [`heartbeat_misses`](Config::heartbeat_misses) | 3 unanswered pings | close 1008 |
//! | [`origins`](Config::origins) | [`Origins::SameHost`] | `403` |
//! | [`protocols`](Config::protocols) | none | handshake without a subprotocol |
//! | [`deflate`](Config::deflate) | off | permessage-deflate (RFC 7692) when on and offered; see [`Deflate`] |
//!
//! The server adds one of its own: [`Server::handshake_timeout`], 10 s for a complete request
//! head.
//!
//! ```
//! use std::time::Duration;
//!
//! let config = ws::Config::new()
//!     .max_message_size(1 << 20)
//!     .heartbeat(Some(Duration::from_secs(30)))
//!     .origins(ws::Origins::AllowList(vec!["https://example.com".into()]));
//! # let _ = config;
//! ```
//!
//! # Shutdown
//!
//! [`serve`]`(..).run(..)` shuts down on SIGINT or SIGTERM, or when a future given to
//! [`Server::shutdown_on`] completes ([`Server::signals`]`(false)` leaves signals alone). Then
//! it stops accepting, and for each socket runs `on_stop`, closes every client with 1001
//! "Server shutting down" after what is already queued for it, waits for their close replies
//! (up to the close timeout) and their `on_close`, and returns. Handshakes that arrive
//! meanwhile get `503`. Stop your own tasks in `on_stop`, as `examples/push.rs` does.
//! [`Socket::shutdown`] does the same for one socket served some other way.
//!
//! ```no_run
//! # struct Chat;
//! # #[ws::websocket]
//! # impl Chat {}
//! # async fn run() -> Result<(), ws::Error> {
//! let chat = ws::Socket::new(Chat);
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! // e.g. an admin route or a supervisor holds `stop`
//! # drop(stop);
//! ws::serve(chat.filter())
//!     .socket(&chat)
//!     .shutdown_on(async { let _ = stopped.await; })
//!     .run("127.0.0.1:8080")
//!     .await
//! # }
//! ```
//!
//! # Testing with `ws::test`
//!
//! With the feature `test` (for your dev-dependencies), [`ws::test`][test-module] serves a
//! socket on 127.0.0.1 exactly as production does and connects real clients to it: query,
//! headers and `Origin` of your choice, send and receive with a timeout, expect a close code
//! and reason, and assert a refusal's status, headers and body. Served with your own routes
//! ([`ws::test::serve_with`][test-module]), it also requests the HTTP routes beside the
//! socket: `server.get("/stats").await?` gives the status, headers and body.
//!
//! ```toml
//! [dev-dependencies]
//! warpsocket = { version = "0.1", features = ["test"] }
//! ```
//!
//! ```
//! # #[cfg(feature = "test")] #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use ws::{Reject, Request};
//!
//! struct Guarded;
//!
//! #[ws::websocket]
//! impl Guarded {
//!     fn on_handshake(&self, req: &Request) -> Result<(), Reject> {
//!         match req.query("token") {
//!             Some("secret") => Ok(()),
//!             _ => Err(Reject::forbidden("No.")),
//!         }
//!     }
//! }
//!
//! // The body of a `#[tokio::test] async fn ... -> Result<(), Box<dyn Error>>`:
//! let socket = ws::Socket::new(Guarded);
//! let server = ws::test::serve(&socket).await;
//!
//! let refusal = server.connect("/?token=guess").expect_refusal().await;
//! assert_eq!(refusal.status(), 403);
//! assert_eq!(refusal.body(), "No.");
//!
//! let mut client = server.connect("/?token=secret").origin(&server.origin()).await?;
//! client.send_text("hi").await?;
//! client.expect_no_message(std::time::Duration::from_millis(50)).await?;
//! let close = client.close(1000, "done").await?;
//! assert_eq!(close.code, 1000);
//!
//! server.shutdown().await;
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "test"))]
//! # fn main() {}
//! ```
//!
//! # Metrics
//!
//! Every socket counts what an operator asks first: [`Endpoint::stats`] is a snapshot
//! ([`SocketStats`]: connections, refusals and closes by reason, messages and bytes, slow
//! consumers, rate-limit pauses, heartbeat timeouts, ping round trips, fan-out times), with
//! [`Endpoint::cluster_stats`] for the backplane and [`Endpoint::history_stats`] for
//! recoveries. With the feature `metrics`, the same figures go through the
//! [`metrics`](https://docs.rs/metrics) facade to whatever recorder the application
//! installs: Prometheus with `metrics-exporter-prometheus`, say. Install it before the
//! socket starts (before [`serve`] or [`Socket::start`]): a socket registers its metrics
//! then. Without a recorder they cost next to nothing.
//!
//! ```no_run
//! // Cargo.toml: warpsocket = { version = "0.1", features = ["metrics"] },
//! //             metrics-exporter-prometheus = { version = "0.18", default-features = false }
//! # #[cfg(feature = "metrics")]
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use warp::Filter;
//!
//! let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
//! // The recorder keeps histograms' values until they are summarised: do it now and then,
//! // scraped or not, so that memory stays bounded.
//! let upkeep = prometheus.clone();
//! tokio::spawn(async move {
//!     loop {
//!         tokio::time::sleep(std::time::Duration::from_secs(5)).await;
//!         upkeep.run_upkeep();
//!     }
//! });
//! let scrape = warp::path("metrics").map(move || prometheus.render());
//! // An address Prometheus reaches and the public does not.
//! let metrics = ws::serve(scrape).bind("127.0.0.1:9090").await?;
//! tokio::spawn(metrics.run());
//! // Then serve the sockets: each registers its metrics as it starts.
//! # Ok(())
//! # }
//! # fn main() {}
//! ```
//!
//! `examples/secure_chat --metrics HOST:PORT` does exactly this. Every metric has the label
//! `socket` ([`Config::name`]; the handler type's name by default); labels never carry a
//! client id or anything a client wrote, so their values stay few. The names:
//!
//! | name | kind | labels | meaning |
//! | --- | --- | --- | --- |
//! | `ws_connections` | gauge | | open connections now |
//! | `ws_connections_opened_total` | counter | | connections that completed the handshake |
//! | `ws_handshakes_refused_total` | counter | `reason` | refused handshakes: `rejected` (by `on_handshake`), `origin`, `protocol` (not a valid WebSocket handshake), `limit` (connection limits), `shutdown`, `error` (a panicking hook) |
//! | `ws_connections_closed_total` | counter | `code` | connections closed, by the code that ended them: 1000 to 1015 as themselves (1006: the TCP connection was lost), 3000 to 4999 as `application` ([`code_label`]) |
//! | `ws_messages_received_total` | counter | | data messages received (a fragmented one once) |
//! | `ws_messages_sent_total` | counter | | data messages sent: a broadcast counts one per receiver |
//! | `ws_received_bytes_total` | counter | | bytes read: the WebSocket stream as on the wire, after compression (before TLS), frame headers and control frames included |
//! | `ws_sent_bytes_total` | counter | | bytes written, counted the same way |
//! | `ws_slow_consumer_closes_total` | counter | | clients closed with 1008 because their send queue was full |
//! | `ws_slow_consumer_drops_total` | counter | | messages dropped for a full queue ([`SlowConsumer::Drop`]) |
//! | `ws_rate_limit_pauses_total` | counter | | times reading from a client waited for its [`RateLimit`] |
//! | `ws_heartbeat_timeouts_total` | counter | | clients closed with 1008 for leaving the heartbeat's pings unanswered |
//! | `ws_ping_rtt_seconds` | histogram | | round trip of the heartbeat's pings (sent to a connection idle for an interval) |
//! | `ws_fanout_seconds` | histogram | | time to queue a broadcast or room delivery for its receivers on this node |
//! | `ws_backplane_up` | gauge | | 1 while the link to the cluster is up |
//! | `ws_backplane_published_total` | counter | | envelopes published to the cluster |
//! | `ws_backplane_received_total` | counter | | envelopes received from other nodes |
//! | `ws_backplane_failures_total` | counter | `kind` | `unsent` (link down or queue full), `missed` (another node's envelope never arrived), `unreadable` |
//! | `ws_backplane_outages_total` | counter | | times the link went down |
//! | `ws_backplane_lag_seconds` | histogram | | from publishing a heartbeat to receiving it back through the backplane: the lag envelopes meet |
//! | `ws_history_recoveries_total` | counter | `outcome` | joins with a position: `recovered`, or not: `no_position`, `epoch`, `window`, `ahead` ([`NotRecovered`]) |
//! | `ws_history_lost_total` | counter | | members closed with 1012 because their room's messages were lost |
//!
//! The log events agree with the labels: a refused handshake is logged with its `reason`,
//! a close with its `code`.
//!
//! For a look rather than a scrape, [`Dashboard`] is a live page of the same figures
//! (connections, message and byte rates, refusals and closes by reason, ping round trips, the
//! backplane's state and lag, the busiest rooms), charts over the last ten minutes that
//! update each second, as a warp filter to mount behind your own authentication; no
//! recorder needed. `examples/secure_chat --dashboard HOST:PORT` serves one.
//!
//! # Logging
//!
//! The library prints nothing itself; it emits [`tracing`](https://docs.rs/tracing) events.
//! Each connection runs in a span `ws` with fields `client` (its [`ClientId`]) and `peer` (its
//! address), so everything a hook logs carries them too. Opening, closing (with code and
//! reason), refused handshakes (with status, `reason`, peer and path), refused messages and protocol
//! errors are `debug`; hook panics and `on_data` errors are `error`; slow consumers are
//! `warn`; listening and shutdown are `info`. `RUST_LOG=ws_runtime=debug` with
//! `tracing_subscriber`'s `EnvFilter` shows them all.
//!
//! # Features
//!
//! | feature | default | adds |
//! | --- | --- | --- |
//! | `tls` | yes | `wss://` with rustls: [`Server::tls`][server-tls], [`Tls`][tls-type] |
//! | `json` | no | [`Json<T>`][json-type] for `on_data`, `Message::json` to send any `Serialize` value (`serde`, `serde_json`) |
//! | `test` | no | [`ws::test`][test-module]: in-process tests with a real client |
//! | `redis` | no | clusters over Redis: [`Cluster::redis`][cluster-redis], [`cluster::Redis`][redis-type] (the `redis` crate) |
//! | `metrics` | no | the figures of [`Endpoint::stats`] through the `metrics` facade ("Metrics" above) |
//!
//! # Examples
//!
//! In the repository's `examples/`: `secure_chat` (the quick start with a page, `--tls-cert`),
//! `echo` (the Autobahn conformance server), `json_chat` (typed JSON events, feature `json`),
//! `push` (a ticker broadcast to every client, stopped at shutdown), `cursors` (live cursors:
//! unique names reserved in `on_handshake` and released in `Drop`, a typed message, a `/stats`
//! route beside the socket, tested with `ws::test` in `tests/cursors.rs`), `rooms` (a JSON room
//! chat with history: its page reconnects and shows what it missed, once and in order; feature
//! `json`, `--redis` for several nodes).
//!
//! # Behaviour you get without asking
//!
//! - Handshakes that are not WebSocket get plain HTTP answers (405, 426, 400); a browser
//!   `Origin` that does not match `Host` gets 403 ([`Origins`]).
//! - Messages reach `on_data` in order, one at a time per connection, with the session as
//!   `&mut S`. A panic in a hook closes that client with 1011 (`500` in `on_handshake`);
//!   everything else goes on.
//! - `on_close` runs exactly once per opened connection with the code that ended it: the
//!   peer's code, 1006 when TCP was lost, the code the server sent otherwise.
//! - Each client has a bounded send queue; a slow consumer is closed with 1008.
//! - A peer silent for 10 s is pinged; three unanswered pings close it with 1008.
//! - Limits: 10 MiB messages, 1 MiB frames (1009 beyond), UTF-8 checked (1007), protocol
//!   errors closed with 1002. See [`Config`] for every default.
//! - A connection that has not sent a complete request head within 10 s is closed
//!   ([`Server::handshake_timeout`]), so slowloris clients cannot pile up. `wss://` is one
//!   call away: [`Server::tls`][server-tls] with a [`Tls`][tls-type] certificate and key
//!   (rustls; the default feature `tls`); handlers still see the client's address.
//!
//! [warp]: https://docs.rs/warp
#![cfg_attr(feature = "json", doc = "[json-type]: Json")]
#![cfg_attr(
    not(feature = "json"),
    doc = "[json-type]: https://docs.rs/warpsocket/latest/ws/struct.Json.html"
)]
#![cfg_attr(feature = "test", doc = "[test-module]: crate::test")]
#![cfg_attr(
    not(feature = "test"),
    doc = "[test-module]: https://docs.rs/warpsocket/latest/ws/test/index.html"
)]
#![cfg_attr(feature = "tls", doc = "[server-tls]: Server::tls\n[tls-type]: Tls")]
#![cfg_attr(
    not(feature = "tls"),
    doc = "[server-tls]: https://docs.rs/warpsocket/latest/ws/struct.Server.html#method.tls\n\
           [tls-type]: https://docs.rs/warpsocket/latest/ws/struct.Tls.html"
)]
#![cfg_attr(
    feature = "redis",
    doc = "[cluster-redis]: Cluster::redis\n[redis-type]: cluster::Redis"
)]
#![cfg_attr(
    not(feature = "redis"),
    doc = "[cluster-redis]: https://docs.rs/warpsocket/latest/ws/struct.Cluster.html#method.redis\n\
           [redis-type]: https://docs.rs/warpsocket/latest/ws/cluster/struct.Redis.html"
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[doc(inline)]
pub use ws_macros::websocket;
#[doc(inline)]
pub use ws_runtime::*;

// The runtime's feature-gated items again, by name: with their feature off, these imports are
// configured out, so rustc's error on `ws::Json` or `ws::test::...` notes "the item is gated
// behind the `json` feature" where the glob alone says only "no `Json` in the root"
// (tests/ui/fail/features). With the feature on, the glob and these name the same items.
#[cfg(feature = "json")]
#[cfg_attr(docsrs, doc(cfg(feature = "json")))]
#[doc(inline)]
pub use ws_runtime::Json;
#[cfg(feature = "json")]
#[cfg_attr(docsrs, doc(cfg(feature = "json")))]
#[doc(inline)]
pub use ws_runtime::JsonError;
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
#[doc(inline)]
pub use ws_runtime::Tls;
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
#[doc(inline)]
pub use ws_runtime::rustls;
#[cfg(feature = "test")]
#[cfg_attr(docsrs, doc(cfg(feature = "test")))]
#[doc(inline)]
pub use ws_runtime::test;
