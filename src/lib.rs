//! Declarative WebSocket servers on [warp]: write the hooks you need on a type, get a warp
//! filter with correct handshakes, typed sessions, an [`Endpoint`] to send from anywhere,
//! and a graceful shutdown.
//!
//! # Quick start
//!
//! ```no_run
//! use std::sync::OnceLock;
//! use warp::Filter;
//! use ws::{ClientId, Close, Endpoint, Message, Reject, Request};
//!
//! struct Chat {
//!     password: String,
//!     endpoint: OnceLock<Endpoint>,
//! }
//!
//! /// One per connection: whatever `on_handshake` returns.
//! struct Member {
//!     name: String,
//! }
//!
//! #[ws::websocket]
//! impl Chat {
//!     async fn on_start(&self, endpoint: Endpoint) {
//!         let _ = self.endpoint.set(endpoint);
//!     }
//!
//!     async fn on_handshake(&self, req: &Request) -> Result<Member, Reject> {
//!         if req.query("password") != Some(self.password.as_str()) {
//!             return Err(Reject::forbidden("Nope. Valid password required."));
//!         }
//!         let name = req.query("name").unwrap_or("anonymous").to_owned();
//!         Ok(Member { name })
//!     }
//!
//!     async fn on_data(&self, id: ClientId, member: &mut Member, msg: Message) {
//!         if let (Some(endpoint), Some(text)) = (self.endpoint.get(), msg.as_text()) {
//!             endpoint.broadcast_except(format!("{}: {text}", member.name), [id]);
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
//!     let chat = ws::Socket::new(Chat {
//!         password: "reallyverysecure".into(),
//!         endpoint: OnceLock::new(),
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
//!   call away: [`Server::tls`] with a [`Tls`] certificate and key (rustls; the default
//!   feature `tls`); handlers still see the client's address.
//!
//! [warp]: https://docs.rs/warp

#[doc(inline)]
pub use ws_macros::websocket;
#[doc(inline)]
pub use ws_runtime::*;
