//! The `#[websocket]` attribute of [`ws`](https://docs.rs/warpsocket/latest/ws/); use it via `ws`.

mod args;
mod ast;
mod check;
mod expand;
mod hook;

use proc_macro::TokenStream;

/// Turns an inherent `impl` block into a WebSocket server: its methods named after the hooks
/// below become the handler the runtime calls.
///
/// The block is kept exactly as written; the attribute adds an implementation of the runtime's
/// handler trait for the block's type that calls your methods. Write only the hooks you need.
///
/// # Hooks
///
/// | hook | when it runs | when absent |
/// | --- | --- | --- |
/// | `on_start(&self)` | once, before the first connection is accepted | nothing |
/// | `on_handshake(&self, request: &Request, accept: &mut Accept) -> Result<S, E>` (or `Option<S>`, `bool`, `()`) | per upgrade request, after the protocol checks; runs to completion even if the client leaves | accept, session `()` |
/// | `on_open(&self, id: ClientId, session: &mut S)` | after the 101 reply, before any `on_data` | nothing |
/// | `on_data(&self, id: ClientId, session: &mut S, message: T)` | per received message, in order, one at a time per connection | discard |
/// | `on_close(&self, id: ClientId, session: S, close: Close)` | exactly once per opened connection, whatever ended it (peer close, error, timeout, shutdown, `Endpoint::close`) | nothing |
/// | `on_stop(&self)` | when shutdown begins, before clients are closed with 1001 | nothing |
///
/// - Every hook takes `&self`, since one handler serves all connections, and may be `async fn`
///   or a plain `fn`.
/// - Every hook may also take `endpoint: &Endpoint` (or `Endpoint`, a clone to keep): the
///   socket's handle to send to, broadcast to and close any client.
/// - Parameters are recognised by their type, so a hook may omit those it does not use and
///   take the rest in any order: `&Endpoint` or `Endpoint`, `&Request`, `&mut Accept`,
///   `ClientId` and `Close` by name (any path ending in that name), the session as `&mut S`
///   (`on_open`, `on_data`) or `S` (`on_close`), and `on_data`'s message as any other type `T`
///   that implements `FromMessage` (`Message`, `String`, `Text`, `Vec<u8>`, `Bytes`, or your
///   own); a message that does not convert closes the connection without calling `on_data`.
/// - `on_handshake`'s return type says whether it can refuse: `Result<S, E>` or any alias of
///   it, where `E` is a `Reject` or converts into one (`Err` answers the upgrade request with
///   that HTTP response instead of 101); `Option<S>` (`None` answers 403); `bool` (`false`
///   answers 403, session `()`); nothing or `()` (always accepts, session `()`). Any other type
///   is a compile error that lists these forms. The session type `S` is what it accepts with;
///   without `on_handshake`, `S` is `()`. Every hook's session parameter must be that `S`.
/// - The session type is named in the trait impl the attribute writes, so it must be at least
///   as visible as the handler type (rustc's E0446 "private type in public interface"
///   otherwise): a `pub struct Chat` needs a `pub struct Member`.
/// - An accepted session that never opens (the client left, the upgrade failed, shutdown
///   began) is dropped without `on_open` or `on_close`: release what the handshake reserved
///   in the session's `Drop` (see the crate documentation).
/// - `on_data` returns `()` or `Result<(), E>` where `E` converts into
///   `Box<dyn Error + Send + Sync>`: an `Err` is logged and closes that client with 1011.
///   The other hooks return `()`.
/// - A panic in a hook closes that client with 1011 (a panic in `on_handshake` answers 500);
///   the server and the other clients go on.
///
/// Methods not named `on_*` are left alone. Mistakes are compile errors on the offending
/// tokens, all reported at once: an unknown `on_*` name, a receiver other than `&self`, a
/// parameter the hook does not take, a duplicate hook, generics, a trait impl. Type mistakes
/// say what to write instead: a handshake type that cannot refuse, an error that is not a
/// refusal, a boxed error without `Send + Sync`, a session parameter of another type.
///
/// # Options
///
/// `#[websocket(crate = path::to::ws)]` names the `ws` crate when it is not a direct
/// dependency called `ws`, e.g. when it is re-exported by another crate.
///
/// Set the environment variable `WS_MACROS_DEBUG=1` while building to print each expansion to
/// stderr.
///
/// # Example
///
/// ```
/// use ws::{ClientId, Close, Endpoint, Message, Reject, Request, websocket};
///
/// struct Chat {
///     password: String,
/// }
///
/// struct Member {
///     name: String,
/// }
///
/// #[websocket]
/// impl Chat {
///     async fn on_handshake(&self, request: &Request) -> Result<Member, Reject> {
///         if request.query("password") != Some(self.password.as_str()) {
///             return Err(Reject::forbidden("Nope. Valid password required."));
///         }
///         let name = request.query("name").unwrap_or("anonymous").to_owned();
///         Ok(Member { name })
///     }
///
///     async fn on_data(&self, endpoint: &Endpoint, member: &mut Member, text: String) {
///         endpoint.broadcast(Message::text(format!("{}: {text}", member.name)));
///     }
///
///     async fn on_close(&self, id: ClientId, member: Member, close: Close) {
///         println!("{id:?} ({}) left: {close}", member.name);
///     }
/// }
/// ```
#[proc_macro_attribute]
pub fn websocket(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::websocket(args.into(), item.into()).into()
}
