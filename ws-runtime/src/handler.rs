//! The `Handler` trait: the six hooks the runtime drives, implemented by `#[websocket]`; and
//! the hidden traits its expansion names (re-exported from `__private`).

use std::future::Future;

use crate::endpoint::{ClientId, Endpoint};
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
/// All hooks run on the tokio runtime; the returned futures must be `Send`.
pub trait Handler: Send + Sync + Sized + 'static {
    /// The per-connection session: the `Ok` type of `on_handshake`, `()` without that hook.
    type Session: Send + 'static;

    /// What [`on_data`](Handler::on_data) takes: the type of its message parameter
    /// ([`Message`](crate::Message) when it has none). A [`FromMessage`](crate::FromMessage)
    /// type receives whole messages, converted; a [`MessageStream`](crate::MessageStream)
    /// receives fragmented messages as their frames arrive.
    type Message: DataParam + Send;

    /// Called once before the first connection is accepted.
    fn on_start(&self, endpoint: Endpoint) -> impl Future<Output = ()> + Send {
        drop(endpoint);
        async {}
    }

    /// Called per upgrade request after the protocol checks. `Ok` accepts (101) and creates the
    /// session; `Err` answers with the [`Reject`]'s HTTP response.
    fn on_handshake(
        &self,
        request: &Request,
        accept: &mut Accept,
    ) -> impl Future<Output = Result<Self::Session, Reject>> + Send;

    /// Called after the 101 reply, before any `on_data`.
    fn on_open(
        &self,
        id: ClientId,
        session: &mut Self::Session,
    ) -> impl Future<Output = ()> + Send {
        let _ = (id, session);
        async {}
    }

    /// Called per received message, in order, one at a time per connection. A message that
    /// cannot become [`Self::Message`](Handler::Message) closes the connection without a call.
    fn on_data(
        &self,
        id: ClientId,
        session: &mut Self::Session,
        message: Self::Message,
    ) -> impl Future<Output = Result<(), DataError>> + Send {
        let _ = (id, session, message);
        async { Ok(()) }
    }

    /// Called exactly once per opened connection, whatever ended it.
    fn on_close(
        &self,
        id: ClientId,
        session: Self::Session,
        close: Close,
    ) -> impl Future<Output = ()> + Send {
        let _ = (id, session, close);
        async {}
    }

    /// Called when shutdown begins, before clients are closed with 1001.
    fn on_stop(&self) -> impl Future<Output = ()> + Send {
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

impl<E: Into<BoxError>> IntoDataResult for Result<(), E> {
    fn into_data_result(self) -> Result<(), DataError> {
        self.map_err(|err| DataError::Handler(err.into()))
    }
}

/// What `on_data` may take as its message parameter
/// ([`Handler::Message`](crate::Handler::Message)): any [`FromMessage`] type (whole
/// messages), or a [`MessageStream`] (fragmented messages as they arrive).
#[diagnostic::on_unimplemented(
    message = "`on_data` cannot take a `{Self}` as its message",
    label = "this type does not implement `ws::FromMessage`",
    note = "the message parameter of `on_data` may be `ws::Message`, `String`, `ws::Text`, `Vec<u8>`, `bytes::Bytes`, `ws::MessageStream`, or a type that implements `ws::FromMessage`"
)]
pub trait DataParam: Sized {
    /// Whether the handler receives fragmented messages as streams.
    const STREAMS: bool;

    /// Converts a whole message.
    ///
    /// # Errors
    ///
    /// The close the conversion asked for.
    fn from_whole(message: Message) -> Result<Self, Close>;

    /// Converts a message still arriving.
    ///
    /// # Errors
    ///
    /// The close the conversion asked for, or the one that ended the connection inside
    /// the message.
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

/// Converts the error of an `on_handshake` that returns `Result<S, E>`.
pub fn into_reject<E: Into<Reject>>(error: E) -> Reject {
    error.into()
}
