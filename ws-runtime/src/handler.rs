//! The `Handler` trait: the six hooks the runtime drives, implemented by `#[websocket]`; and
//! the hidden traits its expansion names (re-exported from `__private`).

use std::future::Future;

use crate::cluster::ClientId;
use crate::endpoint::Endpoint;
use crate::handshake::{Accept, Reject, Request};
use crate::message::{Close, FromMessage, Message};
use crate::stream::MessageStream;

/// The error type `on_data` may return: anything that converts into a boxed error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why `on_data` ended its connection.
#[derive(Debug)]
pub enum DataError {
    /// The handler returned `Err`: the error is logged and the client is closed with 1011.
    Handler(BoxError),
    /// The message could not become the type `on_data` takes
    /// ([`FromMessage`](crate::FromMessage)): the client is closed with this code and reason.
    Refused(Close),
}

/// The hooks of a WebSocket server, as the runtime calls them.
///
/// `#[websocket]` implements this trait for the type of the impl block it annotates; you do not
/// normally implement it by hand. Every method has the behaviour of an absent hook by default,
/// except [`on_handshake`](Handler::on_handshake), which the attribute always generates
/// (accepting with session `()` when the hook is absent).
///
/// Every hook is handed the socket's [`Endpoint`]. All hooks run on the tokio runtime; the
/// returned futures must be `Send`.
pub trait Handler: Send + Sync + Sized + 'static {
    /// The per-connection session: what `on_handshake` accepts with, `()` without that hook.
    type Session: Send + 'static;

    /// What [`on_data`](Handler::on_data) takes: the type of its message parameter
    /// ([`Message`](crate::Message) when it has none). A [`FromMessage`](crate::FromMessage)
    /// type receives whole messages, converted; a [`MessageStream`](crate::MessageStream)
    /// receives fragmented messages as their frames arrive.
    type Message: DataParam + Send;

    /// Called once before the first connection is accepted.
    fn on_start(&self, endpoint: &Endpoint) -> impl Future<Output = ()> + Send {
        let _ = endpoint;
        async {}
    }

    /// Called per upgrade request after the protocol checks. `Ok` accepts (101) and creates the
    /// session; `Err` answers with the [`Reject`]'s HTTP response.
    ///
    /// The runtime runs it to completion once called, even if the client leaves or shutdown
    /// begins meanwhile (shutdown waits for it). A session it accepts that never opens (the
    /// client is known to be gone, the upgrade failed, shutdown began: `503`) is dropped
    /// without `on_open` or `on_close`.
    fn on_handshake(
        &self,
        endpoint: &Endpoint,
        request: &Request,
        accept: &mut Accept,
    ) -> impl Future<Output = Result<Self::Session, Reject>> + Send;

    /// Called after the 101 reply, before any `on_data`.
    fn on_open(
        &self,
        endpoint: &Endpoint,
        id: ClientId,
        session: &mut Self::Session,
    ) -> impl Future<Output = ()> + Send {
        let _ = (endpoint, id, session);
        async {}
    }

    /// Called per received message, in order, one at a time per connection. A message that
    /// cannot become [`Self::Message`](Handler::Message) closes the connection without a call.
    fn on_data(
        &self,
        endpoint: &Endpoint,
        id: ClientId,
        session: &mut Self::Session,
        message: Self::Message,
    ) -> impl Future<Output = Result<(), DataError>> + Send {
        let _ = (endpoint, id, session, message);
        async { Ok(()) }
    }

    /// Called exactly once per opened connection, whatever ended it.
    fn on_close(
        &self,
        endpoint: &Endpoint,
        id: ClientId,
        session: Self::Session,
        close: Close,
    ) -> impl Future<Output = ()> + Send {
        let _ = (endpoint, id, session, close);
        async {}
    }

    /// Called when shutdown begins, before clients are closed with 1001.
    fn on_stop(&self, endpoint: &Endpoint) -> impl Future<Output = ()> + Send {
        let _ = endpoint;
        async {}
    }
}

/// Turns what `on_data` returned into the runtime's result.
#[diagnostic::on_unimplemented(
    message = "`on_data` must return `()` or `Result<(), E>`, not `{Self}`",
    label = "this return type is not accepted",
    note = "with `Result<(), E>`, `E` must convert into `Box<dyn std::error::Error + Send + Sync>`; an `Err` is logged and closes the client with 1011"
)]
pub trait IntoDataResult {
    /// Converts the hook's return value.
    ///
    /// # Errors
    ///
    /// The handler's error, boxed.
    fn into_data_result(self) -> Result<(), DataError>;
}

impl IntoDataResult for () {
    fn into_data_result(self) -> Result<(), DataError> {
        Ok(())
    }
}

impl<E: IntoBoxError> IntoDataResult for Result<(), E> {
    fn into_data_result(self) -> Result<(), DataError> {
        self.map_err(|err| DataError::Handler(err.into_box_error()))
    }
}

/// What `on_data`'s `Err` may hold: anything that converts into a [`BoxError`].
#[diagnostic::on_unimplemented(
    message = "`on_data` cannot fail with a `{Self}`",
    label = "not an error `on_data` can return",
    note = "an error crosses threads to be logged: write `Box<dyn std::error::Error + Send + Sync>` (or `ws::BoxError`), a `String`, or any `E: std::error::Error + Send + Sync + 'static`"
)]
pub trait IntoBoxError {
    /// Boxes the error.
    fn into_box_error(self) -> BoxError;
}

#[diagnostic::do_not_recommend]
impl<E: Into<BoxError>> IntoBoxError for E {
    fn into_box_error(self) -> BoxError {
        self.into()
    }
}

/// What `on_data` may take as its message parameter
/// ([`Handler::Message`](crate::Handler::Message)): any [`FromMessage`] type (whole
/// messages), or a [`MessageStream`] (fragmented messages as they arrive).
///
/// Implemented for you: to take a type of your own, implement [`FromMessage`] for it.
#[diagnostic::on_unimplemented(
    message = "`on_data` cannot take a `{Self}` as its message",
    label = "this type does not implement `ws::FromMessage`",
    note = "the message parameter of `on_data` may be `ws::Message`, `String`, `ws::Text`, `Vec<u8>`, `bytes::Bytes`, `ws::MessageStream`, or a type that implements `ws::FromMessage`"
)]
pub trait DataParam: Sized {
    /// Whether the handler receives fragmented messages as streams.
    #[doc(hidden)]
    const STREAMS: bool;

    /// Converts a whole message.
    ///
    /// # Errors
    ///
    /// The close the conversion asked for.
    #[doc(hidden)]
    fn from_whole(message: Message) -> Result<Self, Close>;

    /// Converts a message still arriving.
    ///
    /// # Errors
    ///
    /// The close the conversion asked for, or the one that ended the connection inside
    /// the message.
    #[doc(hidden)]
    fn from_stream(stream: MessageStream) -> impl Future<Output = Result<Self, Close>> + Send;
}

impl<T: FromMessage> DataParam for T {
    const STREAMS: bool = false;

    fn from_whole(message: Message) -> Result<Self, Close> {
        T::from_message(message)
    }

    /// Collects the stream first (a handler without `STREAMS` gets none from the runtime).
    async fn from_stream(stream: MessageStream) -> Result<Self, Close> {
        T::from_message(stream.into_message().await?)
    }
}

impl DataParam for MessageStream {
    const STREAMS: bool = true;

    fn from_whole(message: Message) -> Result<Self, Close> {
        Ok(MessageStream::from(message))
    }

    async fn from_stream(stream: MessageStream) -> Result<Self, Close> {
        Ok(stream)
    }
}

/// What `on_handshake` may return: whether to accept, and with which session.
#[diagnostic::on_unimplemented(
    message = "`on_handshake` cannot return `{Self}`: it must say whether to accept",
    label = "neither accepts nor refuses",
    note = "return `Result<S, Reject>` (`Ok(session)` accepts, `Err(reject)` answers with that HTTP reply), `Option<S>` (`None` refuses with 403), `bool` (`false` refuses with 403), or nothing (always accepts, with session `()`)",
    note = "to always accept with a session, return `Result<S, Reject>` and `Ok(session)`"
)]
pub trait IntoHandshake {
    /// The session an accepted handshake creates.
    type Session: Send + 'static;

    /// Accepts with a session, or refuses with an HTTP reply.
    ///
    /// # Errors
    ///
    /// The refusal.
    fn into_handshake(self) -> Result<Self::Session, Reject>;
}

/// `Ok(session)` accepts; `Err(e)` answers with `e`'s HTTP reply.
impl<S: Send + 'static, E: IntoReject> IntoHandshake for Result<S, E> {
    type Session = S;

    fn into_handshake(self) -> Result<S, Reject> {
        self.map_err(IntoReject::into_reject)
    }
}

/// `Some(session)` accepts; `None` refuses with `403 Forbidden`.
impl<S: Send + 'static> IntoHandshake for Option<S> {
    type Session = S;

    fn into_handshake(self) -> Result<S, Reject> {
        self.ok_or_else(forbidden)
    }
}

/// `true` accepts with session `()`; `false` refuses with `403 Forbidden`.
impl IntoHandshake for bool {
    type Session = ();

    fn into_handshake(self) -> Result<(), Reject> {
        if self { Ok(()) } else { Err(forbidden()) }
    }
}

/// Always accepts, with session `()`.
impl IntoHandshake for () {
    type Session = ();

    fn into_handshake(self) -> Result<(), Reject> {
        Ok(())
    }
}

/// The refusal of a `None` or `false` handshake.
fn forbidden() -> Reject {
    Reject::new(http::StatusCode::FORBIDDEN)
}

/// What an `Err` of `on_handshake` may hold: a [`Reject`], or anything that converts into one.
#[diagnostic::on_unimplemented(
    message = "`on_handshake` cannot refuse with a `{Self}`",
    label = "not a refusal",
    note = "refuse with a `ws::Reject`: `Err(Reject::bad_request(\"...\"))`, `Reject::forbidden(..)`, `Reject::conflict(..)`, `Reject::new(StatusCode::...)`",
    note = "for an error type of your own, implement `From<YourError> for ws::Reject`"
)]
pub trait IntoReject {
    /// The refusal.
    fn into_reject(self) -> Reject;
}

#[diagnostic::do_not_recommend]
impl<E: Into<Reject>> IntoReject for E {
    fn into_reject(self) -> Reject {
        self.into()
    }
}

/// Ties a hook's session parameter to the session `on_handshake` accepts with: implemented
/// only for `S` itself, so that a mismatch is reported on the parameter, with both types.
#[diagnostic::on_unimplemented(
    message = "this session parameter is `{Self}`, but `on_handshake` accepts with a `{S}`",
    label = "expected `{S}` here",
    note = "every hook shares one session type: `&mut S` in `on_open` and `on_data`, `S` in `on_close`, where `S` is what `on_handshake` accepts with (`()` without `on_handshake`)"
)]
pub trait SessionIs<S> {
    /// The session, as `on_close`'s parameter.
    fn session(session: S) -> Self;

    /// The session, as `on_open`'s or `on_data`'s parameter.
    fn session_mut(session: &mut S) -> &mut Self;
}

impl<S> SessionIs<S> for S {
    fn session(session: S) -> Self {
        session
    }

    fn session_mut(session: &mut S) -> &mut Self {
        session
    }
}
